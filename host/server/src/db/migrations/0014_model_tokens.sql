-- Model tokens an attempt's calls used: of the prompts, and of the answers.
ALTER TABLE attempts ADD COLUMN tokens_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN tokens_out INTEGER NOT NULL DEFAULT 0;
