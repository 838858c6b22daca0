// The cache of prepared weights (e.g. the 3xTF32 big/small split of an fp32 weight) that
// some kernel families read instead of W. An entry is valid while the weight's storage is
// alive, at the same address, and its version counter has not moved (no in-place update).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/intrusive_ptr.h>

#include <cstdint>
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

class PreparedWeightCache {
 public:
  /// The prepared bytes for `key` if `weight` (same storage, same version) was prepared
  /// under that key before; else an undefined tensor. Records `stream` as a user of the
  /// bytes, so that the caching allocator does not reuse them under a running kernel.
  at::Tensor find(const PreparedWeightKey& key, const at::Tensor& weight, c10::cuda::CUDAStream stream);
  /// Keeps `prepared` for `key`, replacing any entry of the same weight address and
  /// dropping entries whose weight storage has been freed.
  void insert(const PreparedWeightKey& key, const at::Tensor& weight, at::Tensor prepared,
              c10::cuda::CUDAStream stream);
  void clear();
  std::size_t size();

 private:
  struct Entry {
    PreparedWeightKey key;
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;  ///< detects a freed, reallocated weight
    std::int64_t version = 0;                           ///< w._version() when prepared
    at::Tensor prepared;                                ///< uint8, `key.bytes` long
    std::vector<c10::cuda::CUDAStream> streams;         ///< streams recorded on `prepared`
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace fusetune::torch_ops
