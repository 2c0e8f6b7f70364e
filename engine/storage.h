// Storage: a reference-counted block of bytes on one device. Tensors are views of it.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>

#include "engine/device.h"

namespace vimoe {

class Storage {
 public:
  // New uninitialised memory: 64-byte aligned on the CPU, from the caching allocator on CUDA.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  // Memory owned elsewhere (an mmap'd file, a pinned buffer); `release` runs when the last
  // tensor viewing it goes away.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, Device device,
                                       std::function<void(void*)> release);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release)
      : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)) {}
  void* data_;
  size_t nbytes_;
  Device device_;
  std::function<void(void*)> release_;
};

}  // namespace vimoe
