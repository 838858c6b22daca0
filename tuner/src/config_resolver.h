// ConfigResolver: which config runs a problem on a device. Exact database row, else the
// nearest tuned shape the config can implement, else the compiled-in default for the
// architecture, else the family's config that is valid for every shape. Database rows
// measured with an older template than this build's are never used.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "current_configs.h"
#include "default_configs.h"
#include "fusetune/fused_linear.h"
#include "search_space.h"
#include "source_generator.h"
#include "tuning_db.h"

namespace fusetune {

class ConfigResolver {
 public:
  /// `db` may be null (no database): the fallbacks still resolve every shape.
  explicit ConfigResolver(const TuningDb* db) : db_(db) {}

  /// The order: this shape's best row on this device; the best of the nearest tuned shape
  /// within kNearShapeFactor in each of M, N, K that the config can implement (or that
  /// shape's fastest config that can); the compiled-in default of the architecture; the
  /// nearest farther tuned shape; the universal config. Needs no GPU: the device is described
  /// by its fingerprint and limits. Throws UsageError for a dtype and policy that do not go
  /// together.
  Resolution resolve(const ProblemShape& shape, const DeviceFingerprint& device, const DeviceLimits& limits);
  /// The search space of an embedded family, loaded once; null for a family this build
  /// does not ship (e.g. a test template found in the database).
  const SearchSpace* space_for(const std::string& family) { return current_.space_for(family); }
  /// The universal config of the shape's fallback family: valid for every shape with
  /// element-aligned pointers (what misaligned tensors run).
  Resolution universal(const ProblemShape& shape);
  /// Whether a stored row was measured with an older template of its (embedded) family than
  /// this build's: such a row timed a kernel that its config name no longer builds, so it is
  /// skipped. Rows of a family this build does not ship are not judged (false).
  bool of_older_template(const TrialResult& trial) { return current_.of_older_template(trial); }
  /// Why the resolver never runs a stored row's config: "older template" (of_older_template)
  /// or "not in its space" (a knob value its family's space has dropped since); null where it
  /// may run it. `fusetune best` and `list` mark rows with it.
  const char* unused_reason(const TrialResult& trial) { return current_.unused_reason(trial); }

  /// Where a shape's best row is of an older template, the shape's fastest usable row stands
  /// in for it only if it took at most this much longer than that best; otherwise the shape
  /// is resolved as if untuned (a slower family would cost more than the compiled-in default).
  static constexpr double kStaleBestSlack = 1.10;
  /// Whether `row` may stand in for `stale_best` by that rule (both timed).
  static bool stands_in_for(const TrialResult& row, const TrialResult& stale_best);
  /// A tuned shape is near if each of its M, N, K is within this factor of the wanted shape's.
  static constexpr std::int64_t kNearShapeFactor = 4;

 private:
  const TuningDb* db_;
  CurrentConfigs current_;  ///< this build's embedded templates and spaces
};

}  // namespace fusetune
