-- The run whose recorded answers to calls out this run is given instead of
-- calling out (`"replay"` at submission).
ALTER TABLE runs ADD COLUMN replay_of TEXT;
