// ConfigResolver: which config runs a problem on a device. Exact database row, else the
// nearest tuned shape the config can implement, else the compiled-in default for the
// architecture, else the family's config that is valid for every shape.
#pragma once

#include <map>
#include <string>

#include "default_configs.h"
#include "fusetune/fused_linear.h"
#include "search_space.h"
#include "tuning_db.h"

namespace fusetune {

class ConfigResolver {
 public:
  /// `db` may be null (no database): the fallbacks still resolve every shape.
  explicit ConfigResolver(const TuningDb* db) : db_(db) {}

  /// Needs no GPU: the device is described by its fingerprint and limits. Throws UsageError
  /// for a dtype and policy that do not go together.
  Resolution resolve(const ProblemShape& shape, const DeviceFingerprint& device, const DeviceLimits& limits);
  /// The search space of an embedded family, loaded once; null for a family this build
  /// does not ship (e.g. a test template found in the database).
  const SearchSpace* space_for(const std::string& family);
  /// The universal config of the shape's fallback family: valid for every shape with
  /// element-aligned pointers (what misaligned tensors run).
  Resolution universal(const ProblemShape& shape);

 private:
  const TuningDb* db_;
  std::map<std::string, SearchSpace> spaces_;
};

}  // namespace fusetune
