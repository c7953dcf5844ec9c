-- A run's budget as it applies (its pipeline's, its submission's and the
-- operator's cap, the tightest of each), and which one it reached.
ALTER TABLE runs ADD COLUMN budget TEXT;
ALTER TABLE runs ADD COLUMN budget_exceeded TEXT;
