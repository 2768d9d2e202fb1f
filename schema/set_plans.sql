CREATE TABLE `set_plans` (
	`id` text PRIMARY KEY NOT NULL,
	`exercise_plan_id` text NOT NULL,
	`plan_type` text NOT NULL,
	`display_order` integer NOT NULL,
	`meta_info` text,
	FOREIGN KEY (`exercise_plan_id`) REFERENCES `exercise_plans`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "set_plans_display_order_check" CHECK("display_order" >= 0),
	CONSTRAINT "set_plans_meta_info_length_check" CHECK("meta_info" IS NULL OR length("meta_info") BETWEEN 1 AND 10000)
);
--> statement-breakpoint
CREATE INDEX `set_plans_exercise_plan_id_idx` ON `set_plans` (`exercise_plan_id`);
