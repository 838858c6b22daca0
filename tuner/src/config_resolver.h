// ConfigResolver: which config runs a problem on a device. Exact database row, else the
// nearest tuned shape the config can implement, else the compiled-in default for the
// architecture, else the family's config that is valid for every shape.
#pragma once

#include <map>
#include <string>

#include "fusetune/fused_linear.h"
#include "search_space.h"
#include "tuning_db.h"

namespace fusetune {

class ConfigResolver {
 public:
  /// `db` may be null (no database): the fallbacks still resolve every shape.
  explicit ConfigResolver(const TuningDb* db) : db_(db) {}

  /// Needs no GPU: the device is described by its fingerprint and limits.
  Resolution resolve(const ProblemShape& shape, const DeviceFingerprint& device, const DeviceLimits& limits);
  /// The search space of an embedded family, loaded once; null for a family this build
  /// does not ship (e.g. a test template found in the database).
  const SearchSpace* space_for(const std::string& family);

 private:
  const TuningDb* db_;
  std::map<std::string, SearchSpace> spaces_;
};

/// The family that serves a (dtype, policy) when nothing is tuned; throws UsageError if none.
std::string fallback_family(const ProblemShape& shape);

}  // namespace fusetune
