// TuningDb: the only code that speaks SQL. Stores devices, runs, every trial (failures
// too, so they are never retried by accident), cuBLAS baselines and the best config per
// (device, shape, dtype, policy). Schema and migrations live beside this file (db/*.sql).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusetune/problem.h"
#include "fusetune/trial.h"

namespace fusetune {

/// What identifies a GPU for tuning purposes: results of one fingerprint are not reused
/// on another.
struct DeviceFingerprint {
  std::string name;  ///< e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0;  ///< compute capability
  int cc_minor = 0;
  int sm_count = 0;
  std::int64_t l2_bytes = 0;
  int driver_version = 0;     ///< cudaDriverGetVersion, e.g. 13000
  std::string nvrtc_version;  ///< "13.0"

  /// Stable text key "name|cc|sms|l2|driver|nvrtc" stored in the device table.
  std::string key() const;
  friend bool operator==(const DeviceFingerprint&, const DeviceFingerprint&) = default;
};

/// One tuning invocation.
struct RunInfo {
  std::string fusetune_version;
  std::string argv;               ///< the command line, space-joined
  std::string search_space_hash;  ///< hash of the search-space file's bytes
  std::uint64_t seed = 0;         ///< seed of the random inputs (the low 63 bits are stored)
};

/// A trial as stored, with its row id and the run that produced it.
struct StoredTrial {
  std::int64_t id = 0;
  std::int64_t run_id = 0;
  std::string device_key;
  TrialResult result;
};

/// cuBLAS (plus a separate epilogue kernel) timed in the same run as the trials.
struct BaselineResult {
  std::string name;  ///< e.g. "cublas_sgemm+epilogue"
  TimingStats timing;
  ErrorStats error;
};

class TuningDb {
 public:
  /// Opens (creating if absent when `create` is true) a fusetune database at `path`.
  /// Checks that an existing file is a fusetune database (PRAGMA application_id) and
  /// not newer than this build, then applies forward migrations in one transaction.
  /// Throws DataError with a one-line message (path + what is wrong + what to do) on a
  /// missing file (create=false), an unwritable path, a corrupt file, a foreign SQLite
  /// file, or a schema newer than this build; in every case the file is left untouched.
  static TuningDb open(const std::string& path, bool create = true);
  /// Opens read-only (for `best`, `list` and the resolver); never creates or migrates.
  /// A database with an older schema version is read without migrating it: what that
  /// version lacks reads as absent (no baselines, registers 0). Throws DataError as open()
  /// does, and also for a missing file or one that holds no fusetune tables yet.
  static TuningDb open_read_only(const std::string& path);

  TuningDb(TuningDb&&) noexcept;
  TuningDb& operator=(TuningDb&&) noexcept;
  ~TuningDb();

  /// Schema version this build writes (PRAGMA user_version after migration).
  static int current_schema_version();
  int schema_version() const;

  /// Inserts the device if new; returns its row id.
  std::int64_t upsert_device(const DeviceFingerprint& device);
  std::int64_t begin_run(std::int64_t device_id, const RunInfo& run);

  /// Stores one trial durably (its own committed transaction, so a SIGKILL right after
  /// loses nothing). A trial with the same (device, shape, dtype, policy, config name,
  /// template hash) replaces the older one (that is what --retune does), keeping its id; if
  /// it was the best, the best is recomputed. An ok trial without timing throws DataError.
  std::int64_t record_trial(std::int64_t run_id, std::int64_t device_id, const TrialResult& trial);

  /// Names of configs already measured for this device and problem with this template
  /// hash, whatever their status: the tuner skips them unless --retune.
  std::vector<std::string> measured_config_names(std::int64_t device_id, const ProblemShape& shape,
                                                 const std::string& family, const std::string& template_hash) const;

  /// Every trial of a problem on a device ("" = any device), fastest ok first, then
  /// failures grouped by status.
  std::vector<StoredTrial> trials(const std::string& device_key, const ProblemShape& shape) const;

  void record_baseline(std::int64_t run_id, std::int64_t device_id, const ProblemShape& shape,
                       const BaselineResult& baseline);
  /// Latest baseline of that name for the problem on the device, if any.
  std::optional<BaselineResult> latest_baseline(const std::string& device_key, const ProblemShape& shape,
                                                const std::string& name) const;

  /// Recomputes the best row for (device, shape): the ok trial with the lowest median time
  /// whose relative error meets the policy's bound (and with no non-finite outputs). A trial of
  /// a family named in `current_template_hashes` counts only if it was measured with that
  /// hash: a row of an older template says nothing about the kernel its name builds now.
  /// `admitted`, when given, says whether a (family, config name) is still a config of this
  /// build's search space (a space may drop a knob value, e.g. one that proved too inexact);
  /// rows it rejects do not count either.
  /// Returns it, or nullopt (and drops the stored best) if none passed.
  using ConfigFilter = std::function<bool(const std::string& family, const std::string& config_name)>;
  std::optional<StoredTrial> update_best(std::int64_t device_id, const ProblemShape& shape,
                                         const std::map<std::string, std::string>& current_template_hashes = {},
                                         const ConfigFilter& admitted = {});
  /// The stored best for exactly this problem on the device.
  std::optional<StoredTrial> best(const std::string& device_key, const ProblemShape& shape) const;
  /// Every best row of the device for this dtype and policy (any shape): the resolver
  /// picks the nearest tuned shape among these.
  std::vector<StoredTrial> bests(const std::string& device_key, Dtype dtype, Policy policy) const;

 private:
  struct Impl;
  explicit TuningDb(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusetune
