// The cache of prepared weights (e.g. the 3xTF32 big/small split of an fp32 weight) that
// some kernel families read instead of W. An entry is valid while the weight's storage is
// alive, at the same address, and its version counter has not moved (no in-place update).
// Its bytes live in device memory of their own, outside every PyTorch memory pool.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/intrusive_ptr.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fusetune::torch_ops {

/// What the prepared bytes depend on, besides the weight's contents.
struct PreparedWeightKey {
  const void* data = nullptr;         ///< w.data_ptr()
  std::int64_t n = 0, k = 0;          ///< w's shape
  at::ScalarType dtype = at::kFloat;  ///< w's dtype
  int policy = 0;                     ///< fusetune::Policy as int
  std::string family;                 ///< kernel family whose format the bytes are in
  std::size_t bytes = 0;              ///< prepared size
  c10::DeviceIndex device = 0;
  friend bool operator==(const PreparedWeightKey&, const PreparedWeightKey&) = default;
};

/// One prepared weight: `bytes` of cudaMalloc memory on the current device (never from
/// PyTorch's caching allocator; prepared_weights.cpp says why) and the event recorded on the
/// stream that last prepared it. Shared through shared_ptr, never copied; frees both on
/// destruction.
class PreparedBuffer {
 public:
  explicit PreparedBuffer(std::size_t bytes);
  PreparedBuffer(const PreparedBuffer&) = delete;
  PreparedBuffer& operator=(const PreparedBuffer&) = delete;
  ~PreparedBuffer();
  void* data() const { return data_; }
  cudaEvent_t ready() const { return ready_; }

 private:
  void* data_ = nullptr;
  cudaEvent_t ready_ = nullptr;
};

class PreparedWeightCache {
 public:
  /// Writes the prepared bytes of the weight to the given device address, on the stream
  /// that get() was given.
  using Prepare = std::function<void(void* prepared)>;

  /// The prepared bytes of `weight` under `key`, for kernels queued on `stream`, which must
  /// not be capturing. If no entry holds `weight` at its current version, `prepare` writes
  /// them first: into the entry's buffer when only the version moved (so a CUDA graph that
  /// captured the buffer reads the new bytes), else into a new entry. If they were prepared
  /// on another stream, `stream` waits for that. Holding the result keeps the memory alive.
  std::shared_ptr<const PreparedBuffer> get(const PreparedWeightKey& key, const at::Tensor& weight,
                                            c10::cuda::CUDAStream stream, const Prepare& prepare);
  /// For a kernel captured into a CUDA graph on `stream`: the valid entry of `weight`, or
  /// null (the caller then prepares inside the graph). Creates, changes and frees nothing;
  /// waits on the host until an entry prepared on another stream is ready.
  std::shared_ptr<const PreparedBuffer> find_for_capture(const PreparedWeightKey& key, const at::Tensor& weight,
                                                         c10::cuda::CUDAStream stream);
  void clear();
  std::size_t size();

 private:
  struct Entry {
    PreparedWeightKey key;
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;  ///< detects a freed, reallocated weight
    std::int64_t version = 0;                           ///< w._version() when prepared
    std::shared_ptr<PreparedBuffer> buffer;             ///< `key.bytes` long
    std::vector<c10::cuda::CUDAStream> ordered;         ///< streams queued after the preparation
  };
  /// The entry of `key` holding `weight`'s live storage (any version), or null.
  Entry* locked_find(const PreparedWeightKey& key, const at::Tensor& weight);
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace fusetune::torch_ops
