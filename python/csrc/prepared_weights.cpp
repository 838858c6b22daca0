// PreparedWeightCache: a short list scanned linearly (one entry per live weight that needs
// preparation, e.g. one per layer), guarded by a mutex, and PreparedBuffer, the memory of
// one entry.
//
// Why cudaMalloc and not at::empty: the prepared bytes outlive the call that prepares them,
// and that call may run while PyTorch routes this thread's or this stream's allocations to a
// private pool: the warm-up run of torch.compile's CUDA graph trees (mode="reduce-overhead"),
// torch.cuda.use_mem_pool, a graph capture. A cached tensor from such a pool is an allocation
// the pool's owner does not know of: CUDA graph trees refuse it ("tensor(s) in the cudagraph
// pool not tracked as outputs"), and it would hold the pool's memory while the graph reuses
// it. PyTorch has no public C++ call that allocates around the active pool (the routing is a
// per-thread filter since 2.8, per stream before; MemPoolContext is gone), so the cache owns
// its memory: it belongs to no pool whatever the PyTorch version or the pool API in use, and
// lives exactly as long as its entry. Costs: the bytes do not show in
// torch.cuda.memory_allocated(), and freeing them synchronizes the device (only when a weight
// has died, or on clear()).
#include "prepared_weights.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <utility>

namespace fusetune::torch_ops {
namespace {

/// Entry::version of an entry whose bytes are not (or no longer) prepared.
constexpr std::int64_t kNotPrepared = -1;

bool same_storage(const c10::weak_intrusive_ptr<c10::StorageImpl>& weak, const at::Tensor& weight) {
  c10::intrusive_ptr<c10::StorageImpl> alive = weak.lock();
  return alive && alive.get() == weight.storage().unsafeGetStorageImpl();
}

bool contains(const std::vector<c10::cuda::CUDAStream>& streams, c10::cuda::CUDAStream stream) {
  return std::find(streams.begin(), streams.end(), stream) != streams.end();
}

/// cudaMalloc, in relaxed capture mode (as PyTorch's allocator does it) so that a capture under
/// way on another thread stays valid. On failure, returns PyTorch's cached free blocks to the
/// driver and tries once more.
void* device_malloc(std::size_t bytes) {
  const c10::cuda::CUDAStreamCaptureModeGuard relaxed(cudaStreamCaptureModeRelaxed);
  void* data = nullptr;
  cudaError_t status = cudaMalloc(&data, bytes);
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // reset the last error before trying again
    c10::cuda::CUDACachingAllocator::emptyCache();
    status = cudaMalloc(&data, bytes);
  }
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    TORCH_CHECK_WITH(OutOfMemoryError, false, "fusetune: CUDA out of memory: the prepared weight needs ", bytes,
                     " bytes (fusetune.clear_weight_cache() frees those of other weights)");
  }
  C10_CUDA_CHECK(status);
  return data;
}

}  // namespace

PreparedBuffer::PreparedBuffer(std::size_t bytes) : data_(device_malloc(bytes)) {
  const cudaError_t status = cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming);
  if (status != cudaSuccess) {
    (void)cudaFree(data_);
    C10_CUDA_CHECK(status);
  }
}

PreparedBuffer::~PreparedBuffer() {
  // Errors are ignored (a destructor, possibly after a device fault). Relaxed mode, as above;
  // cudaFree waits for the kernels still reading the bytes.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
  (void)cudaEventDestroy(ready_);
  (void)cudaFree(data_);
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
}

PreparedWeightCache::Entry* PreparedWeightCache::locked_find(const PreparedWeightKey& key, const at::Tensor& weight) {
  for (Entry& entry : entries_)
    if (entry.key == key && same_storage(entry.storage, weight)) return &entry;
  return nullptr;
}

std::shared_ptr<const PreparedBuffer> PreparedWeightCache::get(const PreparedWeightKey& key, const at::Tensor& weight,
                                                               c10::cuda::CUDAStream stream, const Prepare& prepare) {
  std::lock_guard lock(mutex_);
  const std::int64_t version = weight._version();
  Entry* entry = locked_find(key, weight);
  if (entry && entry->version == version) {
    if (!contains(entry->ordered, stream)) {
      C10_CUDA_CHECK(cudaStreamWaitEvent(stream.stream(), entry->buffer->ready(), 0));
      entry->ordered.push_back(stream);
    }
    return entry->buffer;
  }
  if (!entry) {
    // Drop the entries of dead weights, and any other of this address (a new weight there).
    std::erase_if(entries_, [&](const Entry& other) {
      return other.storage.expired() || (other.key.data == key.data && other.key.device == key.device &&
                                         other.key.policy == key.policy && other.key.family == key.family);
    });
    entries_.push_back(Entry{key,
                             c10::weak_intrusive_ptr<c10::StorageImpl>(weight.storage().getWeakStorageImpl()),
                             kNotPrepared,
                             std::make_shared<PreparedBuffer>(key.bytes),
                             {}});
    entry = &entries_.back();
  }
  entry->version = kNotPrepared;  // until `prepare` has succeeded
  // A new buffer, or the weight changed in place. In the latter case kernels that read the old
  // bytes were queued before this call's weight was written, as PyTorch's stream semantics
  // require of the caller's own in-place update, so rewriting the buffer on `stream` is safe.
  prepare(entry->buffer->data());
  C10_CUDA_CHECK(cudaEventRecord(entry->buffer->ready(), stream.stream()));
  entry->version = version;
  entry->ordered.assign(1, stream);
  return entry->buffer;
}

std::shared_ptr<const PreparedBuffer> PreparedWeightCache::find_for_capture(const PreparedWeightKey& key,
                                                                            const at::Tensor& weight,
                                                                            c10::cuda::CUDAStream stream) {
  std::lock_guard lock(mutex_);
  Entry* entry = locked_find(key, weight);
  if (!entry || entry->version != weight._version()) return nullptr;
  if (!contains(entry->ordered, stream)) {
    // A capturing stream cannot wait on an event recorded outside the capture; the host can
    // (PyTorch synchronizes the device before a capture anyway, so this returns at once).
    const c10::cuda::CUDAStreamCaptureModeGuard relaxed(cudaStreamCaptureModeRelaxed);
    C10_CUDA_CHECK(cudaEventSynchronize(entry->buffer->ready()));
  }
  return entry->buffer;
}

void PreparedWeightCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

std::size_t PreparedWeightCache::size() {
  std::lock_guard lock(mutex_);
  std::erase_if(entries_, [](const Entry& entry) { return entry.storage.expired(); });
  return entries_.size();
}

}  // namespace fusetune::torch_ops
