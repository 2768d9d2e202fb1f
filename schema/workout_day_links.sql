CREATE TABLE `workout_day_links` (
	`id` text PRIMARY KEY NOT NULL,
	`workout_id` text NOT NULL,
	`day_id` text NOT NULL,
	FOREIGN KEY (`workout_id`) REFERENCES `workouts`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`day_id`) REFERENCES `days`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `workout_day_links_workout_id_unique` ON `workout_day_links` (`workout_id`);--> statement-breakpoint
CREATE INDEX `workout_day_links_day_id_idx` ON `workout_day_links` (`day_id`);
