CREATE TABLE `programs` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`meta_info` text,
	CONSTRAINT "programs_name_length_check" CHECK(length("name") BETWEEN 1 AND 200),
	CONSTRAINT "programs_meta_info_length_check" CHECK("meta_info" IS NULL OR length("meta_info") BETWEEN 1 AND 10000)
);
