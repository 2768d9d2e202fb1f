CREATE TABLE `set_logs` (
	`id` text PRIMARY KEY NOT NULL,
	`exercise_log_id` text NOT NULL,
	`weight_kg` real NOT NULL,
	`weight_input_unit` text NOT NULL,
	`reps` integer NOT NULL,
	`rpe` real,
	`memo` text,
	`display_order` integer NOT NULL,
	FOREIGN KEY (`exercise_log_id`) REFERENCES `exercise_logs`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "set_logs_weight_kg_check" CHECK("weight_kg" >= 0),
	CONSTRAINT "set_logs_reps_check" CHECK("reps" >= 0),
	CONSTRAINT "set_logs_rpe_check" CHECK("rpe" IS NULL OR "rpe" BETWEEN 1 AND 10),
	CONSTRAINT "set_logs_memo_length_check" CHECK("memo" IS NULL OR length("memo") BETWEEN 1 AND 10000),
	CONSTRAINT "set_logs_display_order_check" CHECK("display_order" >= 0)
);
