-- Schema version 1 of a fusetune database: devices, runs, every trial and the best trial per
-- (device, shape, dtype, policy). Applied by TuningDb inside one transaction: no BEGIN/COMMIT
-- here, and each script ends by setting PRAGMA user_version to its own number.

-- 0x46545544 ("FTUD"): lets fusetune recognise its own files and refuse foreign SQLite files.
PRAGMA application_id = 1179931972;

-- One row per GPU fingerprint; results are never reused across fingerprints.
CREATE TABLE device (
  id INTEGER PRIMARY KEY,
  fingerprint TEXT NOT NULL UNIQUE,  -- DeviceFingerprint::key()
  name TEXT NOT NULL,
  cc_major INTEGER NOT NULL,
  cc_minor INTEGER NOT NULL,
  sm_count INTEGER NOT NULL,
  l2_bytes INTEGER NOT NULL,
  driver_version INTEGER NOT NULL,
  nvrtc_version TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- One row per tuning invocation.
CREATE TABLE run (
  id INTEGER PRIMARY KEY,
  device_id INTEGER NOT NULL REFERENCES device(id),
  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  fusetune_version TEXT NOT NULL,
  argv TEXT NOT NULL,
  search_space_hash TEXT NOT NULL
) STRICT;

-- Every evaluated config, failures included (so they are not retried by accident). Timing
-- columns are all NULL or all set (set whenever status is 'ok'); rel_error/max_abs_error are
-- NULL when the kernel did not run to completion.
CREATE TABLE trial (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES run(id),
  device_id INTEGER NOT NULL REFERENCES device(id),
  m INTEGER NOT NULL CHECK (m > 0),
  n INTEGER NOT NULL CHECK (n > 0),
  k INTEGER NOT NULL CHECK (k > 0),
  dtype TEXT NOT NULL CHECK (dtype IN ('fp32', 'bf16', 'fp16')),
  policy TEXT NOT NULL CHECK (policy IN ('highest', 'high', 'half')),
  family TEXT NOT NULL,
  config_name TEXT NOT NULL,
  config_json TEXT NOT NULL,
  template_hash TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'invalid', 'compile_failed', 'resources_exceeded',
                                         'launch_failed', 'wrong_result', 'device_fault',
                                         'timeout')),
  message TEXT NOT NULL DEFAULT '',
  compile_ms REAL NOT NULL DEFAULT 0,
  verify_ms REAL NOT NULL DEFAULT 0,
  bench_ms REAL NOT NULL DEFAULT 0,
  time_median_ms REAL,
  time_min_ms REAL,
  time_max_ms REAL,
  samples INTEGER,
  rel_error REAL,
  max_abs_error REAL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE (device_id, m, n, k, dtype, policy, config_name, template_hash),
  CHECK ((time_median_ms IS NULL) = (time_min_ms IS NULL) AND
         (time_median_ms IS NULL) = (time_max_ms IS NULL) AND
         (time_median_ms IS NULL) = (samples IS NULL)),
  CHECK (status <> 'ok' OR time_median_ms IS NOT NULL)
) STRICT;

-- The UNIQUE index above serves lookups by device and problem; this one serves "any device".
CREATE INDEX trial_by_problem ON trial (m, n, k, dtype, policy);

-- The winning trial per (device, shape, dtype, policy), recomputed by TuningDb::update_best.
CREATE TABLE best (
  device_id INTEGER NOT NULL REFERENCES device(id),
  m INTEGER NOT NULL,
  n INTEGER NOT NULL,
  k INTEGER NOT NULL,
  dtype TEXT NOT NULL,
  policy TEXT NOT NULL,
  trial_id INTEGER NOT NULL REFERENCES trial(id) ON DELETE CASCADE,
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (device_id, m, n, k, dtype, policy)
) STRICT;

PRAGMA user_version = 1;
