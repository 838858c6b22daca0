#include "current_configs.h"

#include "fusetune/errors.h"
#include "tuner.h"

namespace fusetune {

CurrentConfigs::CurrentConfigs(TemplateLibrary templates, const std::vector<SearchSpace>& spaces)
    : templates_(std::move(templates)) {
  for (const SearchSpace& space : spaces) spaces_.insert_or_assign(space.family(), space);
}

const SearchSpace* CurrentConfigs::space_for(const std::string& family) {
  auto found = spaces_.find(family);
  if (found != spaces_.end()) return &found->second;
  for (const auto& known : embedded_families())
    if (known == family) return &spaces_.emplace(family, load_search_space(family)).first->second;
  return nullptr;
}

const TemplateLibrary& CurrentConfigs::templates() {
  if (!templates_) templates_.emplace(TemplateLibrary::embedded());
  return *templates_;
}

const std::string* CurrentConfigs::template_hash(const std::string& family) {
  auto found = template_hashes_.find(family);
  if (found != template_hashes_.end()) return &found->second;
  const SearchSpace* space = space_for(family);
  if (!space) return nullptr;
  return &template_hashes_.emplace(family, templates().include_closure_hash(space->template_file())).first->second;
}

bool CurrentConfigs::of_older_template(const TrialResult& trial) {
  const std::string* current = template_hash(trial.config.family);
  return current && trial.template_hash != *current;
}

bool CurrentConfigs::admits(const KernelConfig& config) {
  const SearchSpace* space = space_for(config.family);
  return !space || space->admits(config);
}

bool CurrentConfigs::admits(const std::string& family, const std::string& config_name) {
  const SearchSpace* space = space_for(family);
  if (!space) return true;
  try {
    return space->admits(space->config_from_name(config_name));
  } catch (const UsageError&) {  // a knob or value the space no longer has
    return false;
  }
}

const char* CurrentConfigs::unused_reason(const TrialResult& trial) {
  if (of_older_template(trial)) return "older template";
  if (!admits(trial.config)) return "not in its space";
  return nullptr;
}

std::map<std::string, std::string> CurrentConfigs::template_hashes() {
  for (const auto& family : embedded_families()) template_hash(family);
  for (const auto& [family, space] : spaces_) template_hash(family);
  return template_hashes_;
}

}  // namespace fusetune
