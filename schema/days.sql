CREATE TABLE `days` (
	`id` text PRIMARY KEY NOT NULL,
	`program_id` text NOT NULL,
	`label` text NOT NULL,
	`display_order` integer NOT NULL,
	`meta_info` text,
	FOREIGN KEY (`program_id`) REFERENCES `programs`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "days_label_length_check" CHECK(length("label") BETWEEN 1 AND 200),
	CONSTRAINT "days_display_order_check" CHECK("display_order" >= 0),
	CONSTRAINT "days_meta_info_length_check" CHECK("meta_info" IS NULL OR length("meta_info") BETWEEN 1 AND 10000)
);
--> statement-breakpoint
CREATE INDEX `days_program_id_idx` ON `days` (`program_id`);
