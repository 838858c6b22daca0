-- Schema version 3: the seed of a run's random inputs, so that a measurement can be
-- reproduced on the same inputs (`fusetune tune --seed N`). Runs of v1/v2 keep NULL.
ALTER TABLE run ADD COLUMN seed INTEGER CHECK (seed >= 0);

PRAGMA user_version = 3;
