// SourceGenerator: turns (search space, config) into a tiny CUDA source that includes the
// family's template from kernel_templates/ and instantiates it behind one extern "C" entry.
#pragma once

#include <map>
#include <string>

#include "fusetune/kernel_config.h"
#include "search_space.h"

namespace fusetune {

/// The symbol every generated source exports; the launcher looks it up by this name.
inline constexpr const char* kKernelSymbol = "fusetune_kernel";
/// The weight preparation kernel that templates with a weight_prep define (3xTF32).
inline constexpr const char* kPrepareWeightSymbol = "fusetune_prepare_weight";

/// The .cuh headers that NVRTC may include: the ones embedded in the binary at build time
/// (kernel_templates/), optionally overlaid by the files of a directory (test templates).
class TemplateLibrary {
 public:
  /// The templates compiled into this binary.
  static TemplateLibrary embedded();
  /// Adds (or replaces) every *.cuh of `dir`. Throws DataError if it is not a readable directory.
  void add_directory(const std::string& dir);
  void add(const std::string& name, const std::string& content);
  const std::map<std::string, std::string>& headers() const { return headers_; }
  /// Hash (hex) of `name` and every header it includes, recursively: what a trial's
  /// template_hash records, so editing a template invalidates exactly its trials.
  /// Throws DataError if `name` or an included header is missing.
  std::string include_closure_hash(const std::string& name) const;

 private:
  std::map<std::string, std::string> headers_;
};

struct GeneratedSource {
  std::string file_name;  ///< e.g. "<config name>.cu", used in NVRTC messages
  std::string code;
};

/// Generates the source of one config. The code starts with a line saying it was generated.
GeneratedSource generate_source(const SearchSpace& space, const KernelConfig& config);

}  // namespace fusetune
