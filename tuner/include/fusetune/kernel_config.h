// Kernel configuration: one point of a family's search space (the values of its knobs).
// A config says how the kernel is built; the ProblemShape says what it computes.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace fusetune {

/// Knob name -> value. Ordered, so that names and hashes are deterministic.
using KnobValues = std::map<std::string, std::int64_t>;

struct KernelConfig {
  std::string family;  ///< search-space family, e.g. "ffma"
  /// Procedural name encoding every knob with the abbreviations the search space declares,
  /// e.g. "ffma_t128x128x8_r8x8_v4_u4_d1". Unique within a family: the config's identity in
  /// the database. Set by SearchSpace::make_config.
  std::string name;
  KnobValues knobs;  ///< every knob of the family, by its search-space name (tile_m, ...)

  /// {"family": ..., "name": ..., "knobs": {...}} as compact JSON.
  std::string to_json() const;
  /// Inverse of to_json(); throws DataError on malformed text.
  static KernelConfig from_json(const std::string& text);

  std::int64_t knob(const std::string& key) const;  ///< throws std::out_of_range if absent
  friend bool operator==(const KernelConfig&, const KernelConfig&) = default;
};

}  // namespace fusetune
