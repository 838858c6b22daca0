// Spelling of trial statuses, shared by the database, the worker protocol and the output.
#include "fusetune/trial.h"

#include <array>
#include <utility>

namespace fusetune {

namespace {
constexpr std::array<std::pair<TrialStatus, std::string_view>, 8> kStatusNames = {{
    {TrialStatus::kOk, "ok"},
    {TrialStatus::kInvalid, "invalid"},
    {TrialStatus::kCompileFailed, "compile_failed"},
    {TrialStatus::kResourcesExceeded, "resources_exceeded"},
    {TrialStatus::kLaunchFailed, "launch_failed"},
    {TrialStatus::kWrongResult, "wrong_result"},
    {TrialStatus::kDeviceFault, "device_fault"},
    {TrialStatus::kTimeout, "timeout"},
}};
}  // namespace

std::string_view to_string(TrialStatus status) {
  for (const auto& [value, name] : kStatusNames)
    if (value == status) return name;
  return "?";
}

std::optional<TrialStatus> parse_trial_status(std::string_view text) {
  for (const auto& [value, name] : kStatusNames)
    if (name == text) return value;
  return std::nullopt;
}

}  // namespace fusetune
