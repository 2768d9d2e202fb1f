CREATE TABLE `weight_reps_params` (
	`set_plan_id` text PRIMARY KEY NOT NULL,
	`weight_value` real NOT NULL,
	`weight_type` text NOT NULL,
	`reps` integer NOT NULL,
	FOREIGN KEY (`set_plan_id`) REFERENCES `set_plans`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "weight_reps_params_weight_value_check" CHECK("weight_value" >= 0),
	CONSTRAINT "weight_reps_params_reps_check" CHECK("reps" > 0)
);
