CREATE TABLE `exercise_plan_exercises` (
	`exercise_plan_id` text PRIMARY KEY NOT NULL,
	`exercise_id` text NOT NULL,
	FOREIGN KEY (`exercise_plan_id`) REFERENCES `exercise_plans`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`exercise_id`) REFERENCES `exercises`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `exercise_plan_exercises_exercise_id_idx` ON `exercise_plan_exercises` (`exercise_id`);
