// Configs compiled into the library: per (dtype, policy) and architecture, the config to use
// when the database has nothing for a device, and per (dtype, policy) the family and config
// that implement every shape with element-aligned pointers only.
#pragma once

#include <optional>
#include <string>

#include "fusetune/kernel_config.h"
#include "fusetune/problem.h"

namespace fusetune {

/// A family and knob values, before the family's search space names the config.
struct FamilyKnobs {
  std::string family;
  KnobValues knobs;
};

/// The compiled-in default for the problem's (dtype, policy) on compute capability
/// cc_major.cc_minor, if there is one for that architecture. Knobs it does not set take the
/// first value their search space declares.
std::optional<FamilyKnobs> default_knobs(const ProblemShape& shape, int cc_major, int cc_minor);
/// The family that serves a (dtype, policy) whatever the shape and alignment: ffma for fp32
/// (its accuracy meets every fp32 policy), simt_bf16 / simt_fp16 for half. Throws UsageError
/// for a dtype and policy that do not go together.
std::string fallback_family(const ProblemShape& shape);
/// Knob values of a config of `family` (ffma, simt_bf16, simt_fp16) that can implement every
/// shape (no divisibility or alignment requirements beyond the element size).
KnobValues universal_knobs(const std::string& family);

}  // namespace fusetune
