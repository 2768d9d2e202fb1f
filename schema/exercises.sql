CREATE TABLE `exercises` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`default_weight_input_unit` text DEFAULT 'kg' NOT NULL,
	`weight_step` real DEFAULT 2.5 NOT NULL,
	CONSTRAINT "exercises_name_length_check" CHECK(length("name") BETWEEN 1 AND 200),
	CONSTRAINT "exercises_weight_step_check" CHECK("weight_step" > 0)
);
