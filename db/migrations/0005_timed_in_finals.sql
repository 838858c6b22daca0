-- Schema version 5: which measurement a trial's timing columns hold. A tune times every config
-- once in its sweep, then re-times its finalists together, interleaved with the baselines (the
-- finals), and the finals choose the best; the finalists' rows then hold their finals times.
-- 1: the row's times come from a tune's finals; 0: from a sweep, or unknown (rows of older
-- versions, which did not record it).
ALTER TABLE trial ADD COLUMN timed_in_finals INTEGER NOT NULL DEFAULT 0 CHECK (timed_in_finals IN (0, 1));

PRAGMA user_version = 5;
