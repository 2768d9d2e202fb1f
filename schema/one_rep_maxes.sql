CREATE TABLE `one_rep_maxes` (
	`id` text PRIMARY KEY NOT NULL,
	`exercise_id` text NOT NULL,
	`weight_kg` real NOT NULL,
	`weight_input_unit` text NOT NULL,
	`achieved_at` integer NOT NULL,
	`registered_at` integer NOT NULL,
	FOREIGN KEY (`exercise_id`) REFERENCES `exercises`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "one_rep_maxes_weight_kg_check" CHECK("weight_kg" > 0),
	CONSTRAINT "one_rep_maxes_achieved_at_check" CHECK("achieved_at" <= "registered_at")
);
--> statement-breakpoint
CREATE INDEX `one_rep_maxes_exercise_id_idx` ON `one_rep_maxes` (`exercise_id`);
