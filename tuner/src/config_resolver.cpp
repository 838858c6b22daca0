// Resolution order and the shape distance used for "nearest" (see config_resolver.h).
#include "config_resolver.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "default_configs.h"
#include "fusetune/errors.h"
#include "tuner.h"

namespace fusetune {

namespace {

/// Distance between problem shapes on a log scale: 2x off in one dimension counts as much
/// as 2x off in another, whatever their sizes.
double shape_distance(const ProblemShape& a, const ProblemShape& b) {
  return std::fabs(std::log(double(a.m) / double(b.m))) + std::fabs(std::log(double(a.n) / double(b.n))) +
         std::fabs(std::log(double(a.k) / double(b.k)));
}

/// Whether each of M, N, K of `tuned` is within ConfigResolver::kNearShapeFactor of `shape`'s.
bool near_enough(const ProblemShape& tuned, const ProblemShape& shape) {
  auto within = [](std::int64_t a, std::int64_t b) {
    return std::max(a, b) <= ConfigResolver::kNearShapeFactor * std::min(a, b);
  };
  return within(tuned.m, shape.m) && within(tuned.n, shape.n) && within(tuned.k, shape.k);
}

}  // namespace

bool ConfigResolver::stands_in_for(const TrialResult& row, const TrialResult& stale_best) {
  return row.timing && stale_best.timing && row.timing->median_ms <= kStaleBestSlack * stale_best.timing->median_ms;
}

Resolution ConfigResolver::resolve(const ProblemShape& shape, const DeviceFingerprint& device,
                                   const DeviceLimits& limits) {
  validate_dtype_policy(shape);
  // A config is usable if this build ships its family, the family computes in the shape's
  // dtype, the config is still one of the family's space (a stored row may name a knob value
  // the space has dropped since), and it fits the shape and the device.
  auto usable = [&](const KernelConfig& config) {
    const SearchSpace* space = space_for(config.family);
    return space && std::find(space->dtypes().begin(), space->dtypes().end(), shape.dtype) != space->dtypes().end() &&
           space->admits(config) && !space->check_shape(config, shape) && !space->check_device(config, limits);
  };
  // Rows of an older template are skipped; the detail then says so, since only a new
  // `fusetune tune` of the shape brings them back.
  bool exact_is_older = false, nearer_is_older = false;
  auto with_note = [&](Resolution resolution) {
    if (exact_is_older)
      resolution.detail += "; tuned rows for this shape are of an older template: re-run fusetune tune";
    else if (nearer_is_older)
      resolution.detail += "; tuned rows of nearer shapes are of an older template: re-run fusetune tune";
    return resolution;
  };
  // Every tuned shape's best on this device, nearest first (this shape itself first where its
  // best was passed over).
  const std::string device_key = device.key();
  std::vector<StoredTrial> tuned;
  if (db_) {
    if (auto exact = db_->best(device_key, shape)) {
      exact_is_older = of_older_template(exact->result);
      if (!exact_is_older && usable(exact->result.config))
        return {exact->result.config, ResolutionSource::kExact, "tuned for this shape on " + device.name};
    }
    tuned = db_->bests(device_key, shape.dtype, shape.policy);
    std::stable_sort(tuned.begin(), tuned.end(), [&](const StoredTrial& a, const StoredTrial& b) {
      return shape_distance(a.result.shape, shape) < shape_distance(b.result.shape, shape);
    });
  }
  // From a tuned shape, its best config if it can implement this shape, else its fastest
  // measured config that can (e.g. one without vector loads when k is odd, or one of a family
  // whose template did not change when the best's did).
  const double bound = relative_error_bound(shape.policy);
  auto from_tuned = [&](const StoredTrial& best) -> std::optional<Resolution> {
    const ProblemShape& tuned_shape = best.result.shape;
    const bool same = tuned_shape.m == shape.m && tuned_shape.n == shape.n && tuned_shape.k == shape.k;
    const ResolutionSource source = same ? ResolutionSource::kExact : ResolutionSource::kNearest;
    const std::string detail =
        (same ? "tuned for this shape" : "nearest tuned shape " + tuned_shape.dims()) + " on " + device.name;
    const bool older = of_older_template(best.result);
    if (!older && usable(best.result.config)) return with_note({best.result.config, source, detail});
    for (const auto& trial : db_->trials(device_key, tuned_shape)) {
      const TrialResult& r = trial.result;
      if (r.status != TrialStatus::kOk) break;  // ok trials come first, fastest first
      if (!r.error || r.error->relative_l2 > bound || of_older_template(r) || !usable(r.config)) continue;
      if (same && exact_is_older) {
        // A family whose template did not change, measured for this shape: only about as fast
        // as the stale best. A slower family (a SIMT one where a stale wgmma row won: 30x on
        // the H100, bench/RESULTS.md) would cost more than the compiled-in default does.
        if (!stands_in_for(r, best.result)) break;
        return Resolution{
            r.config, source,
            detail + " (its fastest config that fits; its best row is of an older template: re-run fusetune tune)"};
      }
      return with_note({r.config, source, detail + " (its fastest config that fits)"});
    }
    if (older && !same) nearer_is_older = true;
    return std::nullopt;
  };
  // Shapes within kNearShapeFactor in every dimension first; farther ones only after the
  // compiled-in default, which suits a large shape better than a config tuned for a far
  // smaller one (on the H100, a 64x1024x8192 TF32 winner ran the 1024x8192x8192 drop-in at
  // 2.0x eager, bench/RESULTS.md session 7).
  for (const auto& best : tuned)
    if (near_enough(best.result.shape, shape))
      if (auto resolution = from_tuned(best)) return *resolution;
  if (auto knobs = default_knobs(shape, device.cc_major, device.cc_minor)) {
    if (const SearchSpace* space = space_for(knobs->family)) {
      // Knobs the table does not set take their first declared value (a knob added to a space
      // later, e.g. an off switch), and knobs the space no longer declares are dropped.
      KnobValues values;
      for (const KnobSpec& knob : space->knobs()) {
        const auto set = knobs->knobs.find(knob.name);
        values[knob.name] = set != knobs->knobs.end() ? set->second : knob.values.front();
      }
      KernelConfig config = space->make_config(values);
      if (usable(config))
        return with_note({config, ResolutionSource::kDefault,
                          "compiled-in default for compute capability " + std::to_string(device.cc_major) + "." +
                              std::to_string(device.cc_minor)});
    }
  }
  for (const auto& best : tuned)
    if (!near_enough(best.result.shape, shape))
      if (auto resolution = from_tuned(best)) return *resolution;
  return with_note(universal(shape));
}

Resolution ConfigResolver::universal(const ProblemShape& shape) {
  const std::string family = fallback_family(shape);
  const SearchSpace* space = space_for(family);
  if (!space) throw DataError("this build lacks the fallback search space '" + family + "'");
  return {space->make_config(universal_knobs(family)), ResolutionSource::kUniversal,
          "the " + family + " config that is valid for every shape"};
}

}  // namespace fusetune
