CREATE TABLE `reps_rpe_params` (
	`set_plan_id` text PRIMARY KEY NOT NULL,
	`reps` integer NOT NULL,
	`rpe` real NOT NULL,
	FOREIGN KEY (`set_plan_id`) REFERENCES `set_plans`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "reps_rpe_params_reps_check" CHECK("reps" > 0),
	CONSTRAINT "reps_rpe_params_rpe_check" CHECK("rpe" BETWEEN 1 AND 10)
);
