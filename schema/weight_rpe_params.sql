CREATE TABLE `weight_rpe_params` (
	`set_plan_id` text PRIMARY KEY NOT NULL,
	`weight_value` real NOT NULL,
	`weight_type` text NOT NULL,
	`rpe` real NOT NULL,
	FOREIGN KEY (`set_plan_id`) REFERENCES `set_plans`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "weight_rpe_params_rpe_check" CHECK("rpe" BETWEEN 1 AND 10)
);
