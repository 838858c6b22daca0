// TMA tensor maps of the wgmma families' operands (x, w, the prepared weight halves),
// encoded with the driver's cuTensorMapEncodeTiled. The driver entry point is fetched at run
// time through the CUDA runtime, so nothing links libcuda; encoded maps are cached by what
// they describe, so a trial or a runtime call encodes each map once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <tuple>

#include "fusetune/problem.h"
#include "hopper_args.cuh"

namespace fusetune {

/// Bytes of one element of `dtype` (4, 2, 2).
std::size_t element_bytes(Dtype dtype);

/// One operand as a TMA map sees it: a row-major (rows, k) matrix of `dtype` at `data`, read
/// in boxes of 128 bytes of k by `box_rows` rows, 128-byte swizzled, zero-filled past its edges.
/// (The output is described the same way, with n in place of k, for TMA stores.)
struct OperandMapKey {
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t k = 0;
  Dtype dtype = Dtype::kFloat32;
  int box_rows = 0;
  /// fp32 only: TMA's TF32 element type, so TMA rounds every element to TF32 as it loads it.
  bool round_to_tf32 = false;
  friend auto operator<=>(const OperandMapKey&, const OperandMapKey&) = default;
};

/// "" if TMA can describe the operand, else why not (the pointer is
/// not 16-byte aligned, the row stride k * elem is not a multiple of 16 bytes, box rows not in
/// [1, 256], empty dimensions, TF32 rounding of a non-fp32 operand). Needs no GPU.
std::string operand_map_problem(const OperandMapKey& key);

/// Encodes the map: dims {k, rows}, strides {k * elem} bytes, box {128 / elem, box_rows},
/// element strides {1, 1}, no interleave, 128-byte swizzle, L2 promotion 256 B, zero fill;
/// element type the dtype's, or TFLOAT32 when round_to_tf32.
/// Throws UsageError when operand_map_problem() names a problem, CudaError when the driver
/// entry point is missing or the driver rejects the map.
TensorMapParam encode_operand_map(const OperandMapKey& key);

/// Encoded maps by key, the least recently used dropped beyond `capacity`. A map depends on
/// its key alone, so an entry stays valid even if the memory it names is freed and reused.
/// Not thread-safe: each owner (a worker session, a runtime under its mutex) has its own.
class TensorMapCache {
 public:
  explicit TensorMapCache(std::size_t capacity = 64) : capacity_(capacity) {}
  /// The map of `key`, encoded on first use (throws as encode_operand_map does).
  const TensorMapParam& get(const OperandMapKey& key);
  std::size_t size() const { return entries_.size(); }
  std::size_t encodings() const { return encodings_; }  ///< how many maps were encoded, for tests

 private:
  std::size_t capacity_;
  std::list<OperandMapKey> order_;  ///< most recently used first
  std::map<OperandMapKey, std::pair<TensorMapParam, std::list<OperandMapKey>::iterator>> entries_;
  std::size_t encodings_ = 0;
};

}  // namespace fusetune
