// The `fusetune` command: tune, best, list, check, bench (and the internal worker). Exit codes:
// 0 success, 1 environment or data error (no GPU, corrupt database, ...), 2 usage error.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "compiler.h"
#include "config_resolver.h"
#include "cuda_resources.h"
#include "fusetune/errors.h"
#include "options.h"
#include "progress.h"
#include "source_generator.h"
#include "tuner.h"
#include "verifier.h"
#include "worker.h"

namespace fusetune::cli {
namespace {

std::string self_executable() {
  char path[4096];
  const ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
  if (length <= 0) throw CudaError("cannot find the fusetune executable (/proc/self/exe) to start the GPU worker");
  return std::string(path, static_cast<size_t>(length));
}

std::string scientific(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", value);
  return text;
}

/// One row of the `best` / `list` table; `rank` 0 prints "-" (a row the resolver never runs,
/// which ranks nowhere). `note`, if any, goes in parentheses after the status: why the resolver
/// never runs the row (ConfigResolver::unused_reason, e.g. "older template"), or "stored best".
void print_trial_row(int rank, const StoredTrial& stored, const std::optional<BaselineResult>& baseline,
                     const char* note = nullptr) {
  const TrialResult& r = stored.result;
  const std::string rank_text = rank > 0 ? std::to_string(rank) : "-";
  const std::string mark = note ? std::string(" (") + note + ")" : "";
  if (r.status == TrialStatus::kOk && r.timing) {
    const double percent = baseline ? 100.0 * r.timing->median_ms / baseline->timing.median_ms : 0;
    std::string status = std::string("ok") + mark;
    if (r.prep_ms > 0) {
      char prep[64];
      std::snprintf(prep, sizeof prep, "weight prep %.4f ms, once)", r.prep_ms);
      status = (note ? std::string("ok (") + note + "; " : std::string("ok (")) + prep;
    }
    std::printf("%4s  %-48s %9.4f %8.1f %9s %10.2e %10.2e  %s\n", rank_text.c_str(), r.config.name.c_str(),
                r.timing->median_ms, tflops(r.shape, r.timing->median_ms),
                baseline ? (std::to_string(static_cast<int>(percent + 0.5)) + "%").c_str() : "-",
                r.error ? r.error->relative_l2 : 0.0, r.error ? r.error->max_abs : 0.0, status.c_str());
  } else {
    std::string why = r.message.substr(0, r.message.find('\n'));
    if (why.size() > 60) why = why.substr(0, 57) + "...";
    std::printf("%4s  %-48s %9s %8s %9s %10s %10s  %s%s: %s\n", rank_text.c_str(), r.config.name.c_str(), "-", "-", "-",
                r.error ? scientific(r.error->relative_l2).c_str() : "-",
                r.error ? scientific(r.error->max_abs).c_str() : "-", std::string(to_string(r.status)).c_str(),
                mark.c_str(), why.c_str());
  }
}

void print_table_header(const ProblemShape& shape) {
  std::printf("%4s  %-48s %9s %8s %9s %10s %10s  %s\n", "rank", "config", "median_ms", "TFLOP/s", "%base", "rel_err",
              "max_abs", "status");
  std::printf(
      "      (%%base: median time as a share of %s's; rel_err: ||out - ref|| / ||ref|| vs float64, bound %.0e)\n",
      target_baseline_name(shape).c_str(), relative_error_bound(shape.policy));
}

void print_baseline(const ProblemShape& shape, const BaselineResult& baseline) {
  std::printf("baseline %s: %.4f ms (%.1f TFLOP/s), rel. error %.2e\n", baseline.name.c_str(),
              baseline.timing.median_ms, tflops(shape, baseline.timing.median_ms), baseline.error.relative_l2);
}

int run_tune(TuneCommand command) {
  TuneOptions& options = command.options;
  options.worker_executable = self_executable();
  const TuneReport report = tune(options);
  const ProblemShape& shape = report.shape;
  std::string families;
  for (const auto& family : report.families) families += (families.empty() ? "" : ", ") + family;
  std::printf("\nfusetune: %s %s/%s on %s, families %s (%d measured now, %d already in %s)\n", shape.dims().c_str(),
              std::string(to_string(shape.dtype)).c_str(), std::string(to_string(shape.policy)).c_str(),
              report.device.name.c_str(), families.c_str(), report.measured, report.skipped, options.db_path.c_str());
  std::string counts;
  for (const auto& [status, count] : report.status_counts) counts += " " + status + "=" + std::to_string(count);
  if (!counts.empty()) std::printf("this run's trials:%s\n", counts.c_str());
  for (const BaselineResult& baseline : report.baselines) print_baseline(shape, baseline);
  std::printf("\n");
  print_table_header(shape);
  if (report.finalists > 0)
    std::printf(
        "      (ranks 1-%d: the finals, re-measured together interleaved with the baselines; below: the\n"
        "       sweep's own measurements, taken at other moments of the GPU's clock)\n",
        report.finalists);
  int rank = 0;
  for (const auto& stored : report.ranking) {
    if (stored.result.status != TrialStatus::kOk) break;
    if (++rank > command.top) break;
    if (rank == report.finalists + 1 && report.finalists > 0) std::printf("      ----\n");
    print_trial_row(rank, stored, report.baseline);
  }
  if (!report.best) {
    std::printf("\nno config met the %s bound (relative error <= %.0e); nothing stored as best\n",
                std::string(to_string(shape.policy)).c_str(), relative_error_bound(shape.policy));
    return 1;
  }
  const auto& best = report.best->result;
  std::printf("\nwinner: %s  %.4f ms, %.1f TFLOP/s, rel. error %.2e", best.config.name.c_str(), best.timing->median_ms,
              tflops(shape, best.timing->median_ms), best.error->relative_l2);
  if (best.prep_ms > 0) std::printf(" (plus a one-time weight preparation of %.4f ms)", best.prep_ms);
  if (report.baseline)
    std::printf("  = %.3fx the time of %s", best.timing->median_ms / report.baseline->timing.median_ms,
                report.baseline->name.c_str());
  std::printf("\n");
  if (report.baseline && report.previous_baseline)
    if (const auto note = baseline_drift_note(*report.previous_baseline, *report.baseline))
      std::printf("%s\n", note->c_str());
  return 0;
}

int run_query(const QueryCommand& command) {
  const TuningDb db = TuningDb::open_read_only(command.db_path);
  const auto trials = db.trials("", command.shape);
  if (trials.empty()) {
    std::printf("no trials for %s %s/%s in %s; run `fusetune tune --shape %s` first\n", command.shape.dims().c_str(),
                std::string(to_string(command.shape.dtype)).c_str(),
                std::string(to_string(command.shape.policy)).c_str(), command.db_path.c_str(),
                command.shape.dims().c_str());
    return 1;
  }
  // Trials of several devices may be stored; each device gets its own table. Rows the
  // resolver never runs (measured with an older template than this build's, or a config its
  // space no longer has) are marked, and in `list` shown after the others only with --all.
  ConfigResolver resolver(nullptr);
  const std::string retune = "fusetune tune --shape " + command.shape.dims() + " --dtype " +
                             std::string(to_string(command.shape.dtype)) + " --policy " +
                             std::string(to_string(command.shape.policy));
  std::vector<std::string> devices;
  for (const auto& trial : trials)
    if (std::find(devices.begin(), devices.end(), trial.device_key) == devices.end())
      devices.push_back(trial.device_key);
  for (const auto& device : devices) {
    std::printf("device %s\n", device.c_str());
    for (const std::string& name : baseline_names(command.shape))
      if (const auto stored = db.latest_baseline(device, command.shape, name)) print_baseline(command.shape, *stored);
    const auto baseline = db.latest_baseline(device, command.shape, target_baseline_name(command.shape));
    print_table_header(command.shape);
    std::vector<const StoredTrial*> current, older;
    for (const auto& trial : trials)
      if (trial.device_key == device) (resolver.unused_reason(trial.result) ? older : current).push_back(&trial);
    if (!command.list) {
      const auto best = db.best(device, command.shape);
      if (!best) {
        std::printf("      no config met the policy's error bound on this device\n");
        continue;
      }
      const char* unused = resolver.unused_reason(best->result);
      if (!unused) {
        print_trial_row(1, *best, baseline);
        continue;
      }
      // The resolver does not run the stored best: what it runs instead, as resolve() decides,
      // is this shape's fastest usable row within the bound, if any; in place of a best of an
      // older template only if about as fast as that best was.
      const auto within = std::find_if(current.begin(), current.end(), [&](const StoredTrial* trial) {
        const TrialResult& r = trial->result;
        return r.status == TrialStatus::kOk && r.error &&
               r.error->relative_l2 <= relative_error_bound(command.shape.policy);
      });
      const bool older_template = resolver.of_older_template(best->result);
      if (within != current.end() &&
          (!older_template || ConfigResolver::stands_in_for((*within)->result, best->result)))
        print_trial_row(1, **within, baseline);
      else if (within != current.end())
        std::printf(
            "      no usable row took at most %.1fx the stored best's time: the resolver runs a nearer tuned "
            "shape's config or the compiled-in default\n",
            ConfigResolver::kStaleBestSlack);
      else
        std::printf("      no usable config met the policy's error bound on this device\n");
      print_trial_row(0, *best, baseline, unused);
      std::printf("      (the stored best is not used: %s; re-run `%s`)\n",
                  older_template ? "it was measured with an older template" : "its space no longer has this config",
                  retune.c_str());
      continue;
    }
    // Each row's time is its latest measurement: a tune's sweep, or for its finalists its
    // finals (re-timed together, interleaved with the baselines), taken in different states of
    // the GPU. As in `tune`'s ranking, the finals decide: their rows come first, then the sweep
    // rows, each by time; the stored best won the finals (`best` and the resolver use it).
    const auto best = db.best(device, command.shape);
    const auto sweep_rows = std::stable_partition(
        current.begin(), current.end(), [](const StoredTrial* trial) { return trial->result.timed_in_finals; });
    // Databases before schema version 5 (and tunes without finals) did not record which rows
    // hold finals times: then no row comes first.
    if (sweep_rows != current.begin())
      std::printf(
          "      (times: \"finals\" rows were re-timed together with the baseline in a tune's finals, which chose "
          "the \"stored best\"; the others are sweep times, listed after them)\n");
    else
      std::printf(
          "      (times: each row's latest measurement, in a tune's sweep or its finals; the \"stored best\" won "
          "the finals)\n");
    int shown = 0;
    auto print_rows = [&](const std::vector<const StoredTrial*>& rows, bool unused) {
      for (const StoredTrial* trial : rows) {
        if (command.limit > 0 && shown >= command.limit) {
          std::printf("      ... (--limit 0 shows all)\n");
          return false;
        }
        ++shown;
        const bool is_best = best && best->result.config.name == trial->result.config.name;
        const bool finals = trial->result.timed_in_finals;
        print_trial_row(unused ? 0 : shown, *trial, baseline,
                        unused              ? resolver.unused_reason(trial->result)
                        : is_best && finals ? "stored best, finals"
                        : is_best           ? "stored best"
                        : finals            ? "finals"
                                            : nullptr);
      }
      return true;
    };
    if (!print_rows(current, false) || older.empty()) continue;
    if (command.all)
      print_rows(older, true);
    else
      std::printf(
          "      %zu trial%s of an older template or not in %s space not shown: not used by the resolver (`--all` "
          "lists them, `%s` measures them again)\n",
          older.size(), older.size() == 1 ? "" : "s", older.size() == 1 ? "its" : "their", retune.c_str());
  }
  return 0;
}

int run_check(const CheckCommand& command) {
  const SearchSpace space = load_search_space(command.search_space);
  TemplateLibrary templates = TemplateLibrary::embedded();
  if (!command.template_dir.empty()) templates.add_directory(command.template_dir);
  DeviceLimits limits;  // the Hopper limits: check needs no GPU
  const auto configs = space.valid_configs(limits);
  const Compiler compiler(templates, command.arch, command.cache_dir);
  std::vector<GeneratedSource> sources;
  for (const auto& config : configs) sources.push_back(generate_source(space, config));
  const int threads = command.compile_threads > 0 ? command.compile_threads
                                                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("checking %zu variants of %s for %s with NVRTC %s on %d threads\n", configs.size(),
              space.family().c_str(), command.arch.c_str(), nvrtc_version().c_str(), threads);
  std::fflush(stdout);
  CompilePool pool(compiler, sources, threads);
  ProgressBar progress(static_cast<int>(configs.size()), stderr, !command.quiet);
  int failed = 0, exceeded = 0;
  std::vector<std::string> spilling;  // "name (bytes)": they run, but slowly; worth a look
  double total_ms = 0, max_ms = 0;
  for (size_t i = 0; i < configs.size(); ++i) {
    const CompileOutput output = pool.get(i);
    total_ms += output.compile_ms;
    max_ms = std::max(max_ms, output.compile_ms);
    if (!output.ok) {
      (output.resources_exceeded ? exceeded : failed)++;
      std::fprintf(stderr, "\n%s: %s\n%s\n", configs[i].name.c_str(),
                   output.resources_exceeded ? "resources exceeded" : "compile failed",
                   output.log.substr(0, 1500).c_str());
    } else if (output.spill_bytes > 0) {
      spilling.push_back(configs[i].name + " (" + std::to_string(output.spill_bytes) + " bytes)");
    }
    progress.advance(output.ok);
  }
  progress.finish();
  std::printf(
      "%zu variants: %zu compiled, %d failed, %d over resource limits, %d spill registers; "
      "compile time mean %.0f ms, max %.0f ms per variant\n",
      configs.size(), configs.size() - failed - exceeded, failed, exceeded, static_cast<int>(spilling.size()),
      configs.empty() ? 0.0 : total_ms / configs.size(), max_ms);
  for (const auto& variant : spilling) std::printf("  spills: %s\n", variant.c_str());
  return failed > 0 ? 1 : 0;
}

int run_bench(const BenchCommand& command) {
  const BenchReport report = run_bench(command.options);
  std::printf("fusetune bench: %s on %s", command.options.dims.dims().c_str(), report.device.name.c_str());
  if (report.peak_tflops > 0) std::printf(", peak (cuBLAS bf16 8192^3, measured now) %.0f TFLOP/s", report.peak_tflops);
  if (!std::filesystem::exists(command.options.db_path))
    std::printf("\nno database at %s: each policy runs what the resolver picks without one (see each row's source)",
                command.options.db_path.c_str());
  std::printf("\n\n%-14s %-52s %9s %7s %8s %6s %10s\n", "policy", "kernel", "median_ms", "ratio", "TFLOP/s", "%peak",
              "rel_err");
  bool all_verified = true;
  for (const BenchRow& row : report.rows) {
    const std::string policy = std::string(to_string(row.shape.dtype)) + " " + std::string(to_string(row.shape.policy));
    const double target = row.baselines.empty() ? 0 : row.baselines.front().timing.median_ms;
    auto line = [&](const std::string& name, const BenchEntry& entry) {
      const double flops = tflops(row.shape, entry.timing.median_ms);
      std::printf("%-14s %-52s %9.4f %7.3f %8.1f %5.0f%% %10.2e\n", policy.c_str(), name.c_str(),
                  entry.timing.median_ms, target > 0 ? entry.timing.median_ms / target : 0.0, flops,
                  report.peak_tflops > 0 ? 100 * flops / report.peak_tflops : 0.0, entry.error.relative_l2);
    };
    line(row.winner.name, row.winner);
    for (const BenchEntry& baseline : row.baselines) line("  " + baseline.name, baseline);
    std::printf("%-14s   (%s: %s", "", std::string(to_string(row.resolution.source)).c_str(),
                row.resolution.detail.c_str());
    if (row.prep_ms > 0) std::printf("; one-time weight preparation %.4f ms", row.prep_ms);
    std::printf(")\n");
    if (!row.verified) {
      all_verified = false;
      std::printf("%-14s   FAILED verification: %s\n", "", row.verdict.c_str());
    }
  }
  std::printf(
      "\nratio: median time over the policy's first baseline (the target: cuBLAS GEMM alone for bf16 and "
      "TF32, cuBLAS SGEMM + epilogue for highest)\n");
  if (!command.markdown_path.empty()) {
    std::ofstream out(command.markdown_path);
    out << bench_markdown(report);
    if (!out) throw DataError("cannot write " + command.markdown_path + "; check the path");
    std::printf("markdown table written to %s\n", command.markdown_path.c_str());
  }
  return all_verified ? 0 : 1;
}

}  // namespace
}  // namespace fusetune::cli

int main(int argc, char** argv) {
  using namespace fusetune;
  try {
    const cli::Command command = cli::parse_command_line(argc, argv);
    if (const auto* help = std::get_if<cli::HelpRequest>(&command)) {
      std::fputs(help->text.c_str(), stdout);
      return 0;
    }
    if (const auto* worker = std::get_if<cli::WorkerCommand>(&command)) return run_worker(worker->device);
    if (const auto* tune = std::get_if<cli::TuneCommand>(&command)) {
      cli::TuneCommand copy = *tune;
      for (int i = 0; i < argc; ++i) {
        if (i > 0) copy.options.argv += ' ';
        copy.options.argv += argv[i];
      }
      return cli::run_tune(copy);
    }
    if (const auto* query = std::get_if<cli::QueryCommand>(&command)) return cli::run_query(*query);
    if (const auto* check = std::get_if<cli::CheckCommand>(&command)) return cli::run_check(*check);
    if (const auto* bench = std::get_if<cli::BenchCommand>(&command)) return cli::run_bench(*bench);
  } catch (const UsageError& error) {
    std::fprintf(stderr, "fusetune: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "\nfusetune: %s\n", error.what());
    return 1;
  }
  return 0;
}
