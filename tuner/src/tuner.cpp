// The tuning loop (see tuner.h). The parent never touches the GPU: it compiles with NVRTC
// and talks to the worker, so a faulting or hanging kernel only costs a worker restart.
#include "tuner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <unistd.h>

#include "compiler.h"
#include "current_configs.h"
#include "fusetune/errors.h"
#include "hashing.h"
#include "progress.h"
#include "source_generator.h"
#include "worker.h"

namespace fusetune {

const std::map<std::string, std::string>& embedded_search_space_files();

namespace {

using nlohmann::json;

/// Time allowed for preparing a problem (inputs, float64 reference, first baseline run).
constexpr double kPrepareTimeoutS = 600;

std::vector<std::string> families_in_binary() {
  std::vector<std::string> families;
  for (const auto& [file, text] : embedded_search_space_files())
    families.push_back(std::filesystem::path(file).stem().string());
  return families;
}

TimingStats timing_from_json(const json& j) {
  return {j.at("median_ms").get<double>(), j.at("min_ms").get<double>(), j.at("max_ms").get<double>(),
          j.at("samples").get<int>()};
}

ErrorStats error_from_json(const json& j) {
  return {j.at("relative_l2").get<double>(), j.at("max_abs").get<double>(),
          j.at("allclose_violations").get<long long>(), j.at("non_finite").get<long long>()};
}

DeviceFingerprint fingerprint_from_json(const json& j) {
  DeviceFingerprint f;
  f.name = j.at("name").get<std::string>();
  f.cc_major = j.at("cc_major").get<int>();
  f.cc_minor = j.at("cc_minor").get<int>();
  f.sm_count = j.at("sm_count").get<int>();
  f.l2_bytes = j.at("l2_bytes").get<std::int64_t>();
  f.driver_version = j.at("driver_version").get<int>();
  f.nvrtc_version = j.at("nvrtc_version").get<std::string>();
  return f;
}

std::string short_best(const TrialResult& trial) {
  char text[160];
  std::snprintf(text, sizeof text, "%.4f ms %s", trial.timing->median_ms, trial.config.name.c_str());
  return text;
}

/// A worker answer or failure, turned into a stored trial status.
void apply_answer(TrialResult& trial, const std::optional<json>& answer, const WorkerProcess& worker) {
  if (!answer) {
    trial.status =
        worker.failure() == WorkerProcess::Failure::kTimedOut ? TrialStatus::kTimeout : TrialStatus::kDeviceFault;
    trial.message = worker.failure_detail();
    return;
  }
  if (!answer->value("ok", false)) {
    trial.status = TrialStatus::kLaunchFailed;
    trial.message = "worker error: " + answer->value("error", std::string("?"));
    return;
  }
  trial.status = parse_trial_status(answer->at("status").get<std::string>()).value_or(TrialStatus::kLaunchFailed);
  trial.message = answer->value("message", std::string());
  trial.verify_ms = answer->value("verify_ms", 0.0);
  trial.bench_ms = answer->value("bench_ms", 0.0);
  if (answer->contains("registers")) trial.registers = answer->at("registers").get<int>();
  if (answer->contains("error")) trial.error = error_from_json(answer->at("error"));
  if (answer->contains("timing")) trial.timing = timing_from_json(answer->at("timing"));
  trial.prep_ms = answer->value("prep_ms", 0.0);
}

}  // namespace

std::vector<std::string> embedded_families() { return families_in_binary(); }

SearchSpace load_search_space(const std::string& name_or_path) {
  const auto& files = embedded_search_space_files();
  const auto found = files.find(name_or_path + ".json");
  if (found != files.end()) return SearchSpace::parse(found->second, "search_spaces/" + found->first);
  if (name_or_path.find('/') == std::string::npos && name_or_path.find(".json") == std::string::npos) {
    std::string known;
    for (const auto& family : families_in_binary()) known += (known.empty() ? "" : ", ") + family;
    throw UsageError("unknown search space '" + name_or_path + "'; use one of: " + known + ", or a .json path");
  }
  return SearchSpace::load(name_or_path);
}

std::vector<SearchSpace> search_spaces_for(const std::string& name_or_path, const ProblemShape& shape) {
  std::vector<SearchSpace> spaces;
  const std::string problem =
      std::string(to_string(shape.dtype)) + " with policy " + std::string(to_string(shape.policy));
  if (!name_or_path.empty()) {
    spaces.push_back(load_search_space(name_or_path));
    if (!spaces.back().supports(shape.dtype, shape.policy))
      throw UsageError("search space '" + spaces.back().family() + "' does not implement " + problem);
    return spaces;
  }
  for (const std::string& family : families_in_binary()) {
    SearchSpace space = load_search_space(family);
    if (space.supports(shape.dtype, shape.policy)) spaces.push_back(std::move(space));
  }
  if (spaces.empty()) throw UsageError("no search space of this build implements " + problem);
  return spaces;
}

std::optional<std::string> baseline_drift_note(const BaselineResult& previous, const BaselineResult& now,
                                               double tolerance) {
  const double before = previous.timing.median_ms, after = now.timing.median_ms;
  if (!(before > 0) || !(after > 0)) return std::nullopt;
  const double drift = std::fabs(after / before - 1.0);
  if (drift <= tolerance) return std::nullopt;
  char line[512];
  std::snprintf(line, sizeof line,
                "note: %s took %.4f ms in these finals, %.0f%% %s than in the previous run on this device and "
                "shape (%.4f ms): the GPU's state (clock under its power cap, temperature) differed, and the "
                "ratio above moves with it; `fusetune bench` times both again",
                now.name.c_str(), after, drift * 100.0, after > before ? "slower" : "faster", before);
  return std::string(line);
}

std::vector<StoredTrial> rank_finalists_first(std::vector<StoredTrial> trials, const std::set<std::string>& finalists) {
  std::stable_partition(trials.begin(), trials.end(),
                        [&](const StoredTrial& stored) { return finalists.count(stored.result.config.name) > 0; });
  return trials;
}

std::vector<StoredTrial> choose_finalists(const std::vector<StoredTrial>& trials, int count,
                                          const std::function<bool(const TrialResult&)>& eligible) {
  std::vector<StoredTrial> chosen;
  int from_sweep = 0, from_finals = 0;
  for (const StoredTrial& stored : trials) {
    if (!eligible(stored.result)) continue;
    int& taken = stored.result.timed_in_finals ? from_finals : from_sweep;
    if (taken >= count) continue;
    ++taken;
    chosen.push_back(stored);
  }
  return chosen;
}

TuneReport tune(const TuneOptions& options) {
  validate_dtype_policy(options.shape);
  const std::vector<SearchSpace> spaces = search_spaces_for(options.search_space, options.shape);
  const ProblemShape& shape = options.shape;
  TemplateLibrary templates = TemplateLibrary::embedded();
  if (!options.template_dir.empty()) templates.add_directory(options.template_dir);
  std::map<std::string, const SearchSpace*> space_of;  // by family
  std::string spaces_hash;
  for (const SearchSpace& space : spaces) {
    space_of[space.family()] = &space;
    spaces_hash += (spaces_hash.empty() ? "" : ",") + space.content_hash();
  }
  // Which stored rows count (CurrentConfigs: of the current template, still in the space),
  // judged against the spaces and templates this run tunes with. Only those are skipped as
  // measured, finalists, the best, or in the ranking.
  CurrentConfigs current(templates, spaces);
  const std::map<std::string, std::string> template_hash_of = current.template_hashes();  // by family

  // An existing database is checked before any GPU work, so a corrupt or foreign file
  // fails fast; a new one is only created once a GPU is known to be there.
  std::optional<TuningDb> db;
  if (std::filesystem::exists(options.db_path)) {
    db.emplace(TuningDb::open(options.db_path, false));
  } else {
    const auto parent = std::filesystem::absolute(options.db_path).parent_path();
    if (!std::filesystem::is_directory(parent) || access(parent.c_str(), W_OK) != 0)
      throw DataError("cannot create the database " + options.db_path + ": directory " + parent.string() +
                      " does not exist or is not writable; pass --db with a writable path");
  }

  WorkerProcess worker(options.worker_executable, options.device);
  const auto device_answer = worker.request({{"op", "device"}}, kPrepareTimeoutS);
  if (!device_answer) throw CudaError("the GPU worker failed to start: " + worker.failure_detail());
  if (!device_answer->value("ok", false)) throw CudaError(device_answer->value("error", std::string("worker error")));
  TuneReport report;
  report.shape = shape;
  for (const SearchSpace& space : spaces) report.families.push_back(space.family());
  report.device = fingerprint_from_json(device_answer->at("fingerprint"));
  DeviceLimits limits;
  limits.cc_major = report.device.cc_major;
  limits.cc_minor = report.device.cc_minor;
  limits.sm_count = report.device.sm_count;
  limits.max_threads_per_block = device_answer->at("limits").at("max_threads_per_block").get<int>();
  limits.max_smem_per_block = device_answer->at("limits").at("max_smem_per_block").get<std::int64_t>();
  const std::string arch = device_answer->at("arch").get<std::string>();

  if (!db) db.emplace(TuningDb::open(options.db_path, true));
  const std::int64_t device_id = db->upsert_device(report.device);

  // Plan: every config of every space (invalid ones recorded with their reason), minus what
  // the database already holds for its template, in strategy order, cut to the budget.
  struct Planned {
    const SearchSpace* space;
    KernelConfig config;
  };
  std::vector<Planned> plan;
  for (const SearchSpace& space : spaces) {
    std::set<std::string> measured;
    if (!options.retune)
      for (auto& name :
           db->measured_config_names(device_id, shape, space.family(), template_hash_of.at(space.family())))
        measured.insert(name);
    for (auto& config : space.enumerate()) {
      if (measured.count(config.name)) {
        ++report.skipped;
        continue;
      }
      plan.push_back({&space, std::move(config)});
    }
  }
  // 63 bits, so that the seed stored in SQLite (signed 64-bit) is the one used.
  const std::uint64_t seed =
      (options.seed ? options.seed : std::uint64_t(std::chrono::system_clock::now().time_since_epoch().count())) &
      0x7fffffffffffffffULL;
  const std::int64_t run_id = db->begin_run(device_id, {FUSETUNE_VERSION, options.argv, spaces_hash, seed});
  if (options.strategy == "random") {
    std::mt19937_64 random(seed);
    std::shuffle(plan.begin(), plan.end(), random);
  } else if (options.strategy != "exhaustive") {
    throw UsageError("unknown strategy '" + options.strategy + "'; use exhaustive or random");
  }
  if (options.max_trials > 0 && static_cast<int>(plan.size()) > options.max_trials) plan.resize(options.max_trials);

  const std::string cache_dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  const Compiler compiler(templates, arch, cache_dir);
  std::vector<GeneratedSource> sources;
  // Why a config cannot run here, if it cannot: the shape breaks one of its constraints
  // (invalid), or the device lacks the threads or shared memory (resources exceeded).
  std::vector<std::optional<std::pair<TrialStatus, std::string>>> rejections;
  for (const auto& [space, config] : plan) {
    if (auto why = space->check_shape(config, shape))
      rejections.emplace_back(std::pair{TrialStatus::kInvalid, *why});
    else if (auto lacking = space->check_device(config, limits))
      rejections.emplace_back(std::pair{TrialStatus::kResourcesExceeded, *lacking});
    else
      rejections.emplace_back(std::nullopt);
    if (!rejections.back()) sources.push_back(generate_source(*space, config));
  }

  const json prepare = {{"op", "prepare"},
                        {"m", shape.m},
                        {"n", shape.n},
                        {"k", shape.k},
                        {"dtype", to_string(shape.dtype)},
                        {"policy", to_string(shape.policy)},
                        {"seed", seed}};
  auto ensure_prepared = [&] {
    if (worker.running()) return;
    const auto answer = worker.request(prepare, kPrepareTimeoutS);
    if (!answer || !answer->value("ok", false))
      throw CudaError("the GPU worker could not prepare " + shape.dims() + ": " +
                      (answer ? answer->value("error", std::string("?")) : worker.failure_detail()));
  };
  worker.stop();  // the device query ran in a worker of its own; start fresh for the problem
  ensure_prepared();

  const int threads =
      options.compile_threads > 0 ? options.compile_threads : std::max(1u, std::thread::hardware_concurrency());
  CompilePool pool(compiler, sources, threads);
  ProgressBar progress(static_cast<int>(plan.size()), options.log, options.progress);
  std::optional<TrialResult> best_so_far;
  const auto start = std::chrono::steady_clock::now();
  size_t source_index = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (options.max_minutes > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > options.max_minutes * 60) {
      std::fprintf(options.log, "\ntime budget of %.1f min reached after %zu of %zu configs\n", options.max_minutes, i,
                   plan.size());
      break;
    }
    const SearchSpace& space = *plan[i].space;
    TrialResult trial;
    trial.shape = shape;
    trial.config = plan[i].config;
    trial.template_hash = template_hash_of.at(space.family());
    if (rejections[i]) {
      std::tie(trial.status, trial.message) = *rejections[i];
    } else {
      const CompileOutput compiled = pool.get(source_index++);
      trial.compile_ms = compiled.compile_ms;
      trial.registers = compiled.registers;
      if (!compiled.ok) {
        trial.status = compiled.resources_exceeded ? TrialStatus::kResourcesExceeded : TrialStatus::kCompileFailed;
        trial.message = compiled.log.substr(0, 2000);
      } else {
        ensure_prepared();
        const LaunchSpec spec = make_launch_spec(space, trial.config, shape, limits);
        const auto answer = worker.request(
            {{"op", "trial"}, {"cubin_path", compiled.cubin_path}, {"launch", launch_spec_to_json(spec)}},
            options.trial_timeout_s);
        apply_answer(trial, answer, worker);
        if (trial.status == TrialStatus::kDeviceFault && answer) worker.stop();  // it exits after a fault
      }
    }
    db->record_trial(run_id, device_id, trial);
    ++report.measured;
    ++report.status_counts[std::string(to_string(trial.status))];
    const bool good = trial.status == TrialStatus::kOk;
    if (good && trial.error && trial.error->relative_l2 <= relative_error_bound(shape.policy) &&
        (!best_so_far || trial.timing->median_ms < best_so_far->timing->median_ms)) {
      best_so_far = trial;
      progress.set_best(short_best(trial));
    }
    progress.advance(good);
  }
  progress.finish();

  const auto counts = [&](const TrialResult& r) { return !current.unused_reason(r); };

  // Finals: the fastest correct configs of the tuned families (this run's or earlier runs'
  // that still count; choose_finalists) re-measured interleaved with the baselines, then
  // stored with their final timings.
  ensure_prepared();
  const std::vector<StoredTrial> finalists =
      choose_finalists(db->trials(report.device.key(), shape), options.finalists, [&](const TrialResult& r) {
        return r.status == TrialStatus::kOk && space_of.count(r.config.family) && counts(r) && r.error &&
               r.error->relative_l2 <= relative_error_bound(shape.policy);
      });
  json kernels = json::array();
  for (const auto& finalist : finalists) {
    const SearchSpace& space = *space_of.at(finalist.result.config.family);
    const CompileOutput compiled = compiler.compile(generate_source(space, finalist.result.config));
    if (!compiled.ok) throw CudaError("finalist " + finalist.result.config.name + " no longer compiles");
    kernels.push_back(
        {{"cubin_path", compiled.cubin_path},
         {"launch", launch_spec_to_json(make_launch_spec(space, finalist.result.config, shape, limits))}});
  }
  const auto finals = worker.request({{"op", "finals"}, {"kernels", kernels}, {"rounds", options.final_rounds}},
                                     std::max(kPrepareTimeoutS, options.trial_timeout_s * (1 + kernels.size())));
  if (!finals || !finals->value("ok", false))
    throw CudaError("re-measuring the finalists failed: " +
                    (finals ? finals->value("error", std::string("?")) : worker.failure_detail()));
  for (size_t f = 0; f < finalists.size(); ++f) {
    TrialResult updated = finalists[f].result;
    updated.timing = timing_from_json(finals->at("timings").at(f));
    updated.timed_in_finals = true;
    db->record_trial(run_id, device_id, updated);
  }
  // The baselines timed interleaved with the finalists: the fair comparison. (The target's
  // previous time is read before this run's is stored, to tell a changed GPU state apart.)
  if (!finals->at("baselines").empty())
    report.previous_baseline =
        db->latest_baseline(report.device.key(), shape, finals->at("baselines").front().at("name").get<std::string>());
  for (const auto& answer : finals->at("baselines")) {
    BaselineResult baseline;
    baseline.name = answer.at("name").get<std::string>();
    baseline.timing = timing_from_json(answer.at("timing"));
    baseline.error = error_from_json(answer.at("error"));
    db->record_baseline(run_id, device_id, shape, baseline);
    report.baselines.push_back(baseline);
  }
  if (!report.baselines.empty()) report.baseline = report.baselines.front();
  worker.stop();

  // The finals decide: a config outside them can only look faster through a sweep time taken
  // while the GPU ran faster than in the finals (rank_finalists_first).
  std::set<std::string> finalist_names;
  for (const auto& finalist : finalists) finalist_names.insert(finalist.result.config.name);
  report.best = db->update_best(
      device_id, shape, template_hash_of, [&](const std::string& family, const std::string& config_name) {
        return current.admits(family, config_name) && (finalist_names.empty() || finalist_names.count(config_name));
      });
  std::vector<StoredTrial> counted;
  for (auto& stored : db->trials(report.device.key(), shape))
    if (counts(stored.result)) counted.push_back(std::move(stored));
  report.ranking = rank_finalists_first(std::move(counted), finalist_names);
  report.finalists = static_cast<int>(finalist_names.size());
  return report;
}

}  // namespace fusetune
