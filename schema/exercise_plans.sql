CREATE TABLE `exercise_plans` (
	`id` text PRIMARY KEY NOT NULL,
	`day_id` text NOT NULL,
	`display_order` integer NOT NULL,
	`meta_info` text,
	FOREIGN KEY (`day_id`) REFERENCES `days`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "exercise_plans_display_order_check" CHECK("display_order" >= 0),
	CONSTRAINT "exercise_plans_meta_info_length_check" CHECK("meta_info" IS NULL OR length("meta_info") BETWEEN 1 AND 10000)
);
--> statement-breakpoint
CREATE INDEX `exercise_plans_day_id_idx` ON `exercise_plans` (`day_id`);
