-- Schema version 2: per-element error detail and register counts on trials, and the cuBLAS
-- baselines timed in the same run. Existing trials keep their rows: those that have error
-- statistics get 0 for the new counts (v1 recorded none), the others keep NULL.

-- From v2 on, "error statistics present" is non_finite IS NOT NULL: rel_error alone cannot say
-- it, because SQLite stores a NaN relative error (garbage output) as NULL.
ALTER TABLE trial ADD COLUMN allclose_violations INTEGER CHECK (allclose_violations >= 0);
ALTER TABLE trial ADD COLUMN non_finite INTEGER CHECK (non_finite >= 0);
ALTER TABLE trial ADD COLUMN registers INTEGER NOT NULL DEFAULT 0 CHECK (registers >= 0);
UPDATE trial SET allclose_violations = 0, non_finite = 0 WHERE rel_error IS NOT NULL;

-- cuBLAS (plus a separate epilogue kernel) timed in the same run as the trials. Several runs
-- may store a baseline of the same name; the latest (highest id) is the one reported.
CREATE TABLE baseline (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES run(id),
  device_id INTEGER NOT NULL REFERENCES device(id),
  m INTEGER NOT NULL CHECK (m > 0),
  n INTEGER NOT NULL CHECK (n > 0),
  k INTEGER NOT NULL CHECK (k > 0),
  dtype TEXT NOT NULL CHECK (dtype IN ('fp32', 'bf16', 'fp16')),
  policy TEXT NOT NULL CHECK (policy IN ('highest', 'high', 'half')),
  name TEXT NOT NULL,
  time_median_ms REAL NOT NULL,
  time_min_ms REAL NOT NULL,
  time_max_ms REAL NOT NULL,
  samples INTEGER NOT NULL,
  rel_error REAL,  -- NULL stands for NaN
  max_abs_error REAL,  -- NULL stands for NaN
  allclose_violations INTEGER NOT NULL CHECK (allclose_violations >= 0),
  non_finite INTEGER NOT NULL CHECK (non_finite >= 0),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX baseline_by_problem ON baseline (device_id, m, n, k, dtype, policy, name);

PRAGMA user_version = 2;
