CREATE TABLE `exercise_logs` (
	`id` text PRIMARY KEY NOT NULL,
	`workout_id` text NOT NULL,
	`exercise_id` text NOT NULL,
	`memo` text,
	`display_order` integer NOT NULL,
	FOREIGN KEY (`workout_id`) REFERENCES `workouts`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`exercise_id`) REFERENCES `exercises`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "exercise_logs_memo_length_check" CHECK("memo" IS NULL OR length("memo") BETWEEN 1 AND 10000),
	CONSTRAINT "exercise_logs_display_order_check" CHECK("display_order" >= 0)
);
--> statement-breakpoint
CREATE INDEX `exercise_logs_workout_id_idx` ON `exercise_logs` (`workout_id`);--> statement-breakpoint
CREATE INDEX `exercise_logs_exercise_id_idx` ON `exercise_logs` (`exercise_id`);
