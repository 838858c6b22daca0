// NVRTC driver: headers come from the TemplateLibrary (embedded at build time), cubins are
// cached on disk under their hash and written atomically (temp file, then rename).
#include "compiler.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cuda_check.h"
#include "cuda_resources.h"
#include "hashing.h"

namespace fusetune {

namespace {

/// NVRTC program handle, destroyed on scope exit.
class Program {
 public:
  Program(const GeneratedSource& source, const std::map<std::string, std::string>& headers) {
    std::vector<const char*> names, contents;
    for (const auto& [name, content] : headers) {
      names.push_back(name.c_str());
      contents.push_back(content.c_str());
    }
    FUSETUNE_NVRTC_CHECK(nvrtcCreateProgram(&program_, source.code.c_str(), source.file_name.c_str(),
                                            static_cast<int>(names.size()), contents.data(), names.data()));
  }
  ~Program() { (void)nvrtcDestroyProgram(&program_); }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  nvrtcProgram get() const { return program_; }

 private:
  nvrtcProgram program_ = nullptr;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Writes via a unique temp file and rename, so concurrent tuners never see half a file.
void write_file_atomically(const std::filesystem::path& path, const std::string& bytes) {
  const auto temp = path.string() + ".tmp." + std::to_string(getpid()) + "." +
                    std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw DataError("cannot write the kernel cache file " + temp + "; check --cache-dir");
  }
  std::filesystem::rename(temp, path);
}

/// Reads registers and spill bytes from ptxas' -v report in the NVRTC log.
void parse_resource_usage(CompileOutput& output) {
  static const std::regex registers(R"(Used (\d+) registers)");
  static const std::regex spills(R"((\d+) bytes spill stores, (\d+) bytes spill loads)");
  std::smatch match;
  if (std::regex_search(output.log, match, registers)) output.registers = std::stoi(match[1]);
  if (std::regex_search(output.log, match, spills)) output.spill_bytes = std::stoi(match[1]) + std::stoi(match[2]);
}

}  // namespace

std::string default_cache_dir() {
  if (const char* dir = std::getenv("FUSETUNE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/fusetune";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/fusetune";
  return "/tmp/fusetune-cache";
}

Compiler::Compiler(TemplateLibrary templates, std::string arch, std::string cache_dir)
    : templates_(std::move(templates)), arch_(std::move(arch)), cache_dir_(std::move(cache_dir)) {
  // --maxrregcount=255: without it NVRTC caps some small-tile kernels below what nvcc
  // gives them, and they spill; __launch_bounds__ in the source still bounds the rest.
  options_ = {"--gpu-architecture=" + arch_, "-std=c++17", "--ptxas-options=-v", "--maxrregcount=255",
              // Exact fp32: no fast-math, no flush-to-zero, IEEE division and sqrt.
              "--ftz=false", "--prec-div=true", "--prec-sqrt=true", "--fmad=true"};
  nvrtc_version_ = nvrtc_version();
  if (!cache_dir_.empty()) {
    std::error_code error;
    std::filesystem::create_directories(cache_dir_, error);
    if (error || access(cache_dir_.c_str(), W_OK) != 0)
      throw DataError("kernel cache directory " + cache_dir_ + " is not writable (" + error.message() +
                      "); pass --cache-dir or set FUSETUNE_CACHE_DIR to a writable directory");
  }
}

std::string Compiler::cache_key(const GeneratedSource& source) const {
  std::string key_material = source.code;
  for (const auto& [name, content] : templates_.headers()) key_material += "\n#header " + name + "\n" + content;
  for (const auto& option : options_) key_material += "\n#option " + option;
  key_material += "\n#nvrtc " + nvrtc_version_ + "\n#arch " + arch_;
  return content_hash(key_material);
}

CompileOutput Compiler::compile(const GeneratedSource& source) const {
  CompileOutput output;
  std::filesystem::path cubin_path, log_path;
  if (!cache_dir_.empty()) {
    const std::string key = cache_key(source);
    cubin_path = std::filesystem::path(cache_dir_) / (key + ".cubin");
    log_path = std::filesystem::path(cache_dir_) / (key + ".log");
    if (std::filesystem::exists(cubin_path)) {
      output.ok = true;
      output.from_cache = true;
      output.cubin = read_file(cubin_path);
      output.cubin_path = cubin_path.string();
      output.log = read_file(log_path);
      parse_resource_usage(output);
      if (!output.cubin.empty()) return output;
      output = CompileOutput{};  // an empty cached file is treated as a miss
    }
  }

  const auto start = std::chrono::steady_clock::now();
  Program program(source, templates_.headers());
  std::vector<const char*> options;
  for (const auto& option : options_) options.push_back(option.c_str());
  const nvrtcResult result = nvrtcCompileProgram(program.get(), static_cast<int>(options.size()), options.data());
  size_t log_size = 0;
  FUSETUNE_NVRTC_CHECK(nvrtcGetProgramLogSize(program.get(), &log_size));
  output.log.resize(log_size);
  if (log_size > 0) FUSETUNE_NVRTC_CHECK(nvrtcGetProgramLog(program.get(), output.log.data()));
  while (!output.log.empty() && output.log.back() == '\0') output.log.pop_back();
  output.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  if (result == NVRTC_ERROR_COMPILATION) {
    output.resources_exceeded = output.log.find("too much shared data") != std::string::npos ||
                                output.log.find("too many resources") != std::string::npos ||
                                output.log.find("Registers are spilled") != std::string::npos;
    return output;
  }
  FUSETUNE_NVRTC_CHECK(result);
  size_t cubin_size = 0;
  FUSETUNE_NVRTC_CHECK(nvrtcGetCUBINSize(program.get(), &cubin_size));
  output.cubin.resize(cubin_size);
  FUSETUNE_NVRTC_CHECK(nvrtcGetCUBIN(program.get(), output.cubin.data()));
  output.ok = true;
  parse_resource_usage(output);
  if (!cache_dir_.empty()) {
    write_file_atomically(log_path, output.log);
    write_file_atomically(cubin_path, output.cubin);
    output.cubin_path = cubin_path.string();
  }
  return output;
}

}  // namespace fusetune
