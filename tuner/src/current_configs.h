// Which stored rows still count: the one rule the resolver, `fusetune best` / `list` and a
// tuning run share. A row counts only if it was measured with its family's current template
// (the include-closure hash of the template and its headers: an older one timed a kernel that
// the config's name no longer builds) and its config is still one of its family's space (a
// knob value the space has dropped since, e.g. a promotion interval found too inexact, is a
// config the resolver would not run).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fusetune/kernel_config.h"
#include "fusetune/trial.h"
#include "search_space.h"
#include "source_generator.h"

namespace fusetune {

class CurrentConfigs {
 public:
  /// Judged against this build's embedded templates and search spaces (the resolver's view).
  CurrentConfigs() = default;
  /// Judged against `templates` and against `spaces` where they replace the embedded space of
  /// their family (a tuning run's view: a --space file and --template-dir count).
  CurrentConfigs(TemplateLibrary templates, const std::vector<SearchSpace>& spaces);

  /// The family's space (a replacing one, else the embedded one, loaded once); null for a
  /// family this build does not ship (e.g. a test template found in a database).
  const SearchSpace* space_for(const std::string& family);
  /// Whether the row was measured with an older template of its family than the current one;
  /// rows of a family without a space here are not judged (false).
  bool of_older_template(const TrialResult& trial);
  /// Whether the family's space still has the config (its knob values); true for a family
  /// without a space here.
  bool admits(const KernelConfig& config);
  /// The same for a config known by name only (TuningDb::update_best's filter): false for a
  /// name the space cannot parse (a knob it no longer has).
  bool admits(const std::string& family, const std::string& config_name);
  /// Why a row does not count: "older template" or "not in its space"; null where it counts.
  const char* unused_reason(const TrialResult& trial);
  /// The current template hash of every family with a space here (for TuningDb::update_best).
  std::map<std::string, std::string> template_hashes();

 private:
  const std::string* template_hash(const std::string& family);
  const TemplateLibrary& templates();

  std::optional<TemplateLibrary> templates_;            ///< loaded on first use when not given
  std::map<std::string, SearchSpace> spaces_;           ///< by family, replacing or loaded once
  std::map<std::string, std::string> template_hashes_;  ///< by family, computed once
};

}  // namespace fusetune
