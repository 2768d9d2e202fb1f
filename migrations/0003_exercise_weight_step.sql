ALTER TABLE `exercises` ADD `weight_step` real DEFAULT 2.5 NOT NULL CONSTRAINT "exercises_weight_step_check" CHECK("weight_step" > 0);
