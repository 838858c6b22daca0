// Launch arguments of the tensor-core (wgmma) families: TMA tensor maps for the operands
// plus the plain pointers the epilogue needs. Plain C++ so that NVRTC, nvcc and the host
// compiler see one layout; the host fills the maps with cuTensorMapEncodeTiled.
#pragma once

namespace fusetune {

/// Same size and alignment as the driver's CUtensorMap (an opaque 128-byte object). The
/// kernel receives it inside a `const __grid_constant__` parameter, where TMA may read it.
struct alignas(64) TensorMapParam {
  unsigned long long opaque[16];
};

/// Operand kinds of the wgmma template (template argument kOperand).
enum OperandKind : int {
  kOperandBf16 = 0,    ///< x, w, bias, out bf16; fp32 accumulate
  kOperandFp16 = 1,    ///< x, w, bias, out fp16; fp32 accumulate
  kOperandTf32 = 2,    ///< x, w, bias, out fp32; one TF32 product (policy high), x and w rounded by TMA (TF32 maps)
  kOperandTf32x3 = 3,  ///< x, bias, out fp32; w prepared as big + small TF32 halves (policy highest)
};

/// Rows of the out box of the TMA-store epilogue (out_map below); its k extent is 128 bytes.
/// 16: each warp of a consumer warpgroup stores its own 16 rows of a 64-row wgmma slice.
constexpr int kStoreBoxRows = 16;

/// Arguments of one launch of a wgmma-family kernel.
///
/// The host encodes the maps for row-major matrices, 128-byte swizzle, zero fill out of
/// bounds, box = (128 bytes of k) x (rows of one tile):
/// - x_map: x (m, k), box {128 / elem, tile_m}
/// - w_map: w (n, k) (for 3xTF32: the big half of the prepared weight), box {128 / elem, tile_n}
/// - for TF32, x_map and w_map have TMA's data type TFLOAT32, which makes TMA round each fp32
///   element to TF32 (to nearest) as it loads it. wgmma reading plain fp32 would truncate
///   instead, which biases z and failed the `high` bound (7.4e-4 > 5e-4, measured on the H100).
/// - w_small_map: 3xTF32 only, the small half of the prepared weight; unused otherwise
/// - out_map: out (n columns, m rows), box {128 / elem, 64}, for the TMA-store epilogue
struct HopperLinearArgs {
  TensorMapParam x_map;
  TensorMapParam w_map;
  TensorMapParam w_small_map;
  TensorMapParam out_map;  ///< out (m, n), box {128 / elem, 64}; read only when out_tma is 1
  const void* bias;        ///< n elements of the input type, or null: no bias
  void* out;               ///< (m, n) row-major, the input type (fp32 for the fp32 kinds)
  int m;
  int n;
  int k;
  float scale;
  /// 1: the epilogue writes out through out_map with TMA stores (out 16-byte aligned and
  /// n * elem a multiple of 16, as TMA needs); 0: straight from registers.
  int out_tma;
  /// Stream-K configs (persistent 2) only, else null: the two parts of a stream-K workspace
  /// (stream_k_workspace_bytes below). Each block passes the partial sums of a tile it did not
  /// finish through its slot of `partials` and raises its flag in `partial_flags`; the block
  /// that finishes the tile waits for the flag and adds them. The host zeroes the flags of
  /// the grid's blocks before every launch. Launches that share a workspace must not overlap
  /// in time (one stream).
  float* partials;
  int* partial_flags;
};

/// The stream-K workspace: flags for kStreamKMaxBlocks blocks of at most two consumer
/// warpgroups first (flag block * consumers + consumer), then one fp32 tile_m x tile_n slot per
/// block (at a fixed offset, 16-byte aligned, for every config).
constexpr int kStreamKMaxBlocks = 1024;
constexpr long long kStreamKFlagsBytes = kStreamKMaxBlocks * 2 * 4;
#ifndef __CUDACC_RTC__  // host code only (NVRTC compiles no host functions)
constexpr long long stream_k_workspace_bytes(int blocks, int tile_m, int tile_n) {
  return kStreamKFlagsBytes + static_cast<long long>(blocks) * tile_m * tile_n * 4;
}
#endif

/// Arguments of the weight preparation kernel `fusetune_prepare_weight` (3xTF32): writes
/// prepared[0, count) = the TF32-rounded big part of w, prepared[count, 2 count) = the
/// TF32-rounded remainder w - big.
struct WeightPrepArgs {
  const float* w;
  float* prepared;
  long long count;  ///< n * k
};

}  // namespace fusetune
