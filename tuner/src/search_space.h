// SearchSpace: a kernel family's knobs, their values and the constraints between them,
// read from search_spaces/<family>.json (data, not code). Device limits (threads, shared
// memory) are applied here from the device's properties, before anything is compiled.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "expression.h"
#include "fusetune/kernel_config.h"
#include "fusetune/problem.h"

namespace fusetune {

/// What a block of one config needs from the device, and the grid for one problem.
struct LaunchGeometry {
  int threads = 0;              ///< threads per block
  std::int64_t smem_bytes = 0;  ///< dynamic shared memory per block
  std::int64_t grid_x = 1, grid_y = 1, grid_z = 1;
};

/// How a family's generated kernel takes its arguments (the search space's "launch").
enum class LaunchContract {
  kPlain,      ///< "plain": FusedLinearArgs, raw pointers (the SIMT families)
  kTensorMap,  ///< "tensor_map": HopperLinearArgs, TMA tensor maps of x and w (the wgmma families)
};

/// Element type of the TMA maps of x and w (the search space's "tma_operand_type"): the
/// operands' own dtype, or for fp32 operands TMA's TF32 type, which makes TMA round each
/// element to TF32 (to nearest) as it loads it (the TF32 family: the tensor cores would truncate).
enum class TmaOperandType { kNative, kTf32 };

/// One-time preparation of the weight that a family needs (the search space's "weight_prep").
enum class WeightPrep {
  kNone,       ///< "none": the kernel reads w as it is
  kTf32Split,  ///< "tf32_split": 2*n*k floats, TF32 big parts then remainders (3xTF32)
};

/// One template argument of the family's entry: a knob's value, or a constant written
/// verbatim (an integer, or a named constant of the templates such as fusetune::kOperandBf16).
struct TemplateArg {
  std::string knob;      ///< the knob whose value is passed; empty for a constant
  std::string constant;  ///< the constant's spelling when `knob` is empty
};

/// The device properties a config is checked against before compilation.
struct DeviceLimits {
  int cc_major = 9;
  int cc_minor = 0;
  int max_threads_per_block = 1024;
  std::int64_t max_smem_per_block = 232448;  ///< opt-in maximum (cudaDevAttrMaxSharedMemoryPerBlockOptin)
  int sm_count = 132;
};

/// One knob as declared in the file.
struct KnobSpec {
  std::string name;    ///< e.g. "tile_m" (same spelling in config, SQL and template: kTileM)
  std::string abbrev;  ///< used in config names, e.g. "t"
  std::vector<std::int64_t> values;
  std::string doc;  ///< what it does and why its values are these
};

/// A boolean expression over knobs (constraints) or knobs and m, n, k (shape constraints).
struct ConstraintSpec {
  std::string expr;
  std::string why;  ///< shown when the constraint rejects a config
};

class SearchSpace {
 public:
  /// Reads and validates a search-space file. Throws DataError naming the file and the
  /// problem (missing file, malformed JSON, unknown field, bad expression, unknown knob).
  static SearchSpace load(const std::string& path);
  /// Same, from text; `origin` names the source in error messages.
  static SearchSpace parse(const std::string& json_text, const std::string& origin);

  const std::string& family() const { return family_; }
  const std::string& description() const { return description_; }
  const std::string& origin() const { return origin_; }                ///< the file (or name) it was read from
  const std::string& template_file() const { return template_file_; }  ///< e.g. "ffma_gemm.cuh"
  const std::string& entry() const { return entry_; }                  ///< device function template to instantiate
  const std::vector<TemplateArg>& template_args() const { return template_args_; }
  LaunchContract launch() const { return launch_; }
  WeightPrep weight_prep() const { return weight_prep_; }
  TmaOperandType tma_operand_type() const { return tma_operand_type_; }
  /// Whether the family declares a knob called `name`.
  bool has_knob(const std::string& name) const;
  const std::vector<KnobSpec>& knobs() const { return knobs_; }
  const std::string& content_hash() const { return content_hash_; }  ///< hash of the file bytes
  const std::vector<ConstraintSpec>& constraints() const { return constraints_; }
  const std::vector<ConstraintSpec>& shape_constraints() const { return shape_constraints_; }
  const std::vector<Dtype>& dtypes() const { return dtypes_; }
  const std::vector<Policy>& policies() const { return policies_; }
  bool supports(Dtype dtype, Policy policy) const;

  /// A config from knob values; fills in the procedural name. Throws UsageError for a
  /// missing or unknown knob.
  KernelConfig make_config(const KnobValues& knobs) const;
  /// Inverse of the procedural name: the config called `name` (e.g. from the command
  /// line). Throws UsageError if it is not a name of this family's product.
  KernelConfig config_from_name(const std::string& name) const;
  /// Every config of the cartesian product that satisfies the constraints (device-free).
  std::vector<KernelConfig> enumerate() const;
  /// enumerate() minus configs whose threads or shared memory exceed the device limits.
  std::vector<KernelConfig> valid_configs(const DeviceLimits& limits) const;

  /// Whether `config` is one of this space's configs: this family, every knob declared with
  /// a declared value, every constraint met. (A stored config may predate the space: a value
  /// dropped since, or a knob added.)
  bool admits(const KernelConfig& config) const;
  /// nullopt if the config satisfies every constraint, else "<expr>: <why>" of the first
  /// violated one. Throws UsageError if the config is not one of this family's.
  std::optional<std::string> check_constraints(const KernelConfig& config) const;
  /// nullopt if the config fits the device, else a one-line reason.
  std::optional<std::string> check_device(const KernelConfig& config, const DeviceLimits& limits) const;
  /// nullopt if the config can implement the shape (shape constraints hold), else the
  /// `why` of the first violated shape constraint.
  std::optional<std::string> check_shape(const KernelConfig& config, const ProblemShape& shape) const;
  /// Threads, shared memory and grid of the config for a shape on a device (evaluates
  /// "derived"; the grid may use the device's sm_count, e.g. for persistent kernels).
  LaunchGeometry launch_geometry(const KernelConfig& config, const ProblemShape& shape,
                                 const DeviceLimits& limits) const;

 private:
  /// Throws UsageError unless `config` has exactly this family's knobs, each a declared value.
  void check_knobs(const KnobValues& knobs) const;
  /// `expression` evaluated with `values`; an evaluation error becomes a DataError naming
  /// the file, what was evaluated (`context`) and the values.
  std::int64_t evaluate(const Expression& expression, const KnobValues& values, const std::string& context) const;
  /// Knob values plus m, n, k of `shape`.
  static KnobValues with_shape(const KnobValues& knobs, const ProblemShape& shape);

  std::string origin_, description_;
  std::string family_, template_file_, entry_, content_hash_;
  std::vector<TemplateArg> template_args_;
  LaunchContract launch_ = LaunchContract::kPlain;
  WeightPrep weight_prep_ = WeightPrep::kNone;
  TmaOperandType tma_operand_type_ = TmaOperandType::kNative;
  std::vector<KnobSpec> knobs_;
  std::map<std::string, std::string> derived_;  ///< threads, smem_bytes, grid_x/y/z -> expression
  std::vector<ConstraintSpec> constraints_;
  std::vector<ConstraintSpec> shape_constraints_;
  std::vector<Dtype> dtypes_;
  std::vector<Policy> policies_;
  std::map<std::string, Expression> derived_expressions_;  ///< derived_, parsed
  std::vector<Expression> constraint_expressions_;         ///< constraints_, parsed, same order
  std::vector<Expression> shape_constraint_expressions_;   ///< shape_constraints_, parsed, same order
};

}  // namespace fusetune
