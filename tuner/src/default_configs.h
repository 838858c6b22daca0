// Configs compiled into the library: per architecture, the measured winner to use when the
// database has nothing for a device, and per family the config that implements every shape.
#pragma once

#include <optional>
#include <string>

#include "fusetune/kernel_config.h"

namespace fusetune {

/// Knob values of the compiled-in default for `family` on compute capability
/// cc_major.cc_minor, if one was measured for that architecture.
std::optional<KnobValues> default_knobs(const std::string& family, int cc_major, int cc_minor);
/// Knob values of a config of `family` that can implement every shape (no divisibility
/// or alignment requirements beyond the element size).
KnobValues universal_knobs(const std::string& family);

}  // namespace fusetune
