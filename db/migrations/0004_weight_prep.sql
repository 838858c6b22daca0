-- Schema version 4: the one-time weight preparation of a trial's family (the 3xTF32
-- big/small split of the weight), timed on its own and never inside the kernel's timing.
-- 0 for families that read the weight as it is, and for the trials of older versions.
ALTER TABLE trial ADD COLUMN prep_ms REAL NOT NULL DEFAULT 0 CHECK (prep_ms >= 0);

PRAGMA user_version = 4;
