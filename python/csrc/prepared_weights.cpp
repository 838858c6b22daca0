// PreparedWeightCache: a short list scanned linearly (one entry per live weight that needs
// preparation, e.g. one per layer), guarded by a mutex.
#include "prepared_weights.h"

#include <c10/cuda/CUDACachingAllocator.h>

#include <algorithm>

namespace fusetune::torch_ops {
namespace {

bool same_storage(const c10::weak_intrusive_ptr<c10::StorageImpl>& weak, const at::Tensor& weight) {
  c10::intrusive_ptr<c10::StorageImpl> alive = weak.lock();
  return alive && alive.get() == weight.storage().unsafeGetStorageImpl();
}

std::int64_t version_of(const at::Tensor& weight) { return weight._version(); }

}  // namespace

at::Tensor PreparedWeightCache::find(const PreparedWeightKey& key, const at::Tensor& weight,
                                     c10::cuda::CUDAStream stream) {
  std::lock_guard lock(mutex_);
  for (Entry& entry : entries_) {
    if (!(entry.key == key) || entry.version != version_of(weight) || !same_storage(entry.storage, weight)) continue;
    if (std::find(entry.streams.begin(), entry.streams.end(), stream) == entry.streams.end()) {
      c10::cuda::CUDACachingAllocator::recordStream(entry.prepared.storage().data_ptr(), stream);
      entry.streams.push_back(stream);
    }
    return entry.prepared;
  }
  return {};
}

void PreparedWeightCache::insert(const PreparedWeightKey& key, const at::Tensor& weight, at::Tensor prepared,
                                 c10::cuda::CUDAStream stream) {
  std::lock_guard lock(mutex_);
  std::erase_if(entries_, [&](const Entry& entry) {
    return entry.storage.expired() || (entry.key.data == key.data && entry.key.device == key.device &&
                                       entry.key.policy == key.policy && entry.key.family == key.family);
  });
  entries_.push_back(Entry{key,
                           c10::weak_intrusive_ptr<c10::StorageImpl>(weight.storage().getWeakStorageImpl()),
                           version_of(weight),
                           std::move(prepared),
                           {stream}});
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
