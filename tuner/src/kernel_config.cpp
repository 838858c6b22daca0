// JSON form of a kernel config: how configs are stored in the database and sent to the worker.
#include "fusetune/kernel_config.h"

#include <nlohmann/json.hpp>

#include "fusetune/errors.h"

namespace fusetune {

std::string KernelConfig::to_json() const {
  nlohmann::json json = {{"family", family}, {"name", name}, {"knobs", knobs}};
  return json.dump();
}

KernelConfig KernelConfig::from_json(const std::string& text) {
  try {
    const auto json = nlohmann::json::parse(text);
    KernelConfig config;
    config.family = json.at("family").get<std::string>();
    config.name = json.at("name").get<std::string>();
    config.knobs = json.at("knobs").get<KnobValues>();
    return config;
  } catch (const nlohmann::json::exception& error) {
    throw DataError("malformed kernel config JSON (" + std::string(error.what()) + "): " + text.substr(0, 200));
  }
}

std::int64_t KernelConfig::knob(const std::string& key) const { return knobs.at(key); }

}  // namespace fusetune
