CREATE TABLE `workout_completions` (
	`id` text PRIMARY KEY NOT NULL,
	`workout_id` text NOT NULL,
	`completed_at` integer NOT NULL,
	FOREIGN KEY (`workout_id`) REFERENCES `workouts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `workout_completions_workout_id_unique` ON `workout_completions` (`workout_id`);
