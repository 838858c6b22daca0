// Tensor-map encoding through cuTensorMapEncodeTiled, fetched with
// cudaGetDriverEntryPointByVersion (cuda.h and cudaTypedefs.h give the types only).
#include "tensor_maps.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <mutex>

#include "cuda_check.h"
#include "fusetune/errors.h"

namespace fusetune {

// The map's bytes are copied into TensorMapParam; TMA needs them 64-byte aligned in the kernel's
// parameter space (CUDA 13's CUtensorMap asks for 128 on the host, which a copy does not need).
static_assert(sizeof(TensorMapParam) == sizeof(CUtensorMap) && alignof(TensorMapParam) >= 64,
              "TensorMapParam must hold a CUtensorMap, 64-byte aligned");

namespace {

/// TMA's limits: global strides and addresses are multiples of 16 bytes, a box has at most
/// 256 rows, dimensions are below 2^32.
constexpr std::uintptr_t kTmaAlignment = 16;
constexpr int kMaxBoxRows = 256;
/// The k extent of a box: the 128-byte swizzle span.
constexpr std::size_t kBoxBytes = 128;

PFN_cuTensorMapEncodeTiled_v12000 encode_entry_point() {
  static std::once_flag once;
  static PFN_cuTensorMapEncodeTiled_v12000 entry = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t status =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault, &found);
    if (status != cudaSuccess)
      failure = std::string("cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled) failed: ") +
                cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
    else if (found != cudaDriverEntryPointSuccess || function == nullptr)
      failure = "the CUDA driver has no cuTensorMapEncodeTiled (a driver for CUDA 12.0 or newer is needed)";
    else
      entry = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
  });
  if (!entry) throw CudaError(failure);
  return entry;
}

CUtensorMapDataType tma_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32:
      return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
    case Dtype::kBFloat16:
      return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    case Dtype::kFloat16:
      return CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  }
  return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
}

}  // namespace

std::size_t element_bytes(Dtype dtype) { return dtype == Dtype::kFloat32 ? 4 : 2; }

std::string operand_map_problem(const OperandMapKey& key) {
  const std::size_t elem = element_bytes(key.dtype);
  if (key.data == nullptr) return "the operand pointer is null";
  if (reinterpret_cast<std::uintptr_t>(key.data) % kTmaAlignment != 0)
    return "the operand pointer is not 16-byte aligned, as TMA needs";
  if (key.rows < 1 || key.k < 1 || key.rows >= (std::int64_t(1) << 32) || key.k >= (std::int64_t(1) << 32))
    return "operand dimensions " + std::to_string(key.rows) + " x " + std::to_string(key.k) +
           " are outside TMA's [1, 2^32)";
  if ((std::size_t(key.k) * elem) % kTmaAlignment != 0)
    return "the row stride k * " + std::to_string(elem) + " = " + std::to_string(std::size_t(key.k) * elem) +
           " bytes is not a multiple of 16, as TMA needs";
  if (key.box_rows < 1 || key.box_rows > kMaxBoxRows)
    return "box rows " + std::to_string(key.box_rows) + " outside TMA's [1, 256]";
  if (key.round_to_tf32 && key.dtype != Dtype::kFloat32)
    return std::string("TF32 rounding applies to fp32 operands, not ") + std::string(to_string(key.dtype));
  return "";
}

TensorMapParam encode_operand_map(const OperandMapKey& key) {
  if (const std::string problem = operand_map_problem(key); !problem.empty())
    throw UsageError("cannot describe the operand with a TMA tensor map: " + problem);
  const auto encode = encode_entry_point();
  const std::size_t elem = element_bytes(key.dtype);
  const cuuint64_t dims[2] = {cuuint64_t(key.k), cuuint64_t(key.rows)};
  const cuuint64_t strides[1] = {cuuint64_t(key.k) * elem};  // of dimension 1; dimension 0 is packed
  const cuuint32_t box[2] = {cuuint32_t(kBoxBytes / elem), cuuint32_t(key.box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMap map;
  std::memset(&map, 0, sizeof map);
  const CUtensorMapDataType type = key.round_to_tf32 ? CU_TENSOR_MAP_DATA_TYPE_TFLOAT32 : tma_type(key.dtype);
  const CUresult result = encode(&map, type, 2, const_cast<void*>(key.data), dims, strides, box, element_strides,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS)
    throw CudaError("cuTensorMapEncodeTiled failed with CUresult " + std::to_string(int(result)) + " for a " +
                    std::to_string(key.rows) + " x " + std::to_string(key.k) + " " + std::string(to_string(key.dtype)) +
                    " operand, box rows " + std::to_string(key.box_rows));
  TensorMapParam param;
  std::memcpy(&param, &map, sizeof param);
  return param;
}

const TensorMapParam& TensorMapCache::get(const OperandMapKey& key) {
  auto found = entries_.find(key);
  if (found != entries_.end()) {
    order_.splice(order_.begin(), order_, found->second.second);
    return found->second.first;
  }
  TensorMapParam map = encode_operand_map(key);
  ++encodings_;
  if (capacity_ > 0 && entries_.size() >= capacity_) {
    entries_.erase(order_.back());
    order_.pop_back();
  }
  order_.push_front(key);
  return entries_.emplace(key, std::pair{map, order_.begin()}).first->second.first;
}

}  // namespace fusetune
