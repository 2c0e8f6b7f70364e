#include "engine/storage.h"

#include <cstdlib>
#include <new>

#include "engine/cuda/allocator.h"
#include "engine/error.h"

namespace vimoe {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  if (device.is_cpu()) {
    const size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    VIMOE_CHECK(p || rounded == 0, "Storage: out of host memory allocating ", nbytes, " bytes");
    return std::shared_ptr<Storage>(new Storage(p, nbytes, device, [](void* q) { std::free(q); }));
  }
  void* p = cuda::device_alloc(nbytes, device.index);
  return std::shared_ptr<Storage>(
      new Storage(p, nbytes, device, [](void* q) { cuda::device_free(q); }));
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, Device device,
                                       std::function<void(void*)> release) {
  return std::shared_ptr<Storage>(new Storage(data, nbytes, device, std::move(release)));
}

Storage::~Storage() {
  if (release_ && data_) release_(data_);
}

}  // namespace vimoe
