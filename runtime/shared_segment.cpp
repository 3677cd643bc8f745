#include "runtime/shared_segment.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace actorserve {

namespace {

uint8_t* map(int fd, std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    throw std::runtime_error("cannot map " + std::to_string(bytes) + " bytes of shared memory: "
                             + std::strerror(errno));
  return static_cast<uint8_t*>(p);
}

} // namespace

std::shared_ptr<shared_segment> shared_segment::create(std::size_t bytes) {
  if (bytes == 0)
    throw std::runtime_error("a shared memory segment needs a size");
  int fd = ::memfd_create("actorserve-batches", MFD_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(std::string("memfd_create failed: ") + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    auto err = errno;
    ::close(fd);
    throw std::runtime_error("cannot size shared memory to " + std::to_string(bytes)
                             + " bytes: " + std::strerror(err));
  }
  try {
    return std::shared_ptr<shared_segment>(new shared_segment(fd, map(fd, bytes), bytes));
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::shared_ptr<shared_segment> shared_segment::attach(int fd, std::size_t bytes) {
  auto* base = map(fd, bytes); // (closes nothing on failure: the caller's descriptor)
  ::close(fd);
  return std::shared_ptr<shared_segment>(new shared_segment(-1, base, bytes));
}

shared_segment::~shared_segment() {
  ::munmap(base_, size_);
  if (fd_ >= 0)
    ::close(fd_);
}

std::optional<std::size_t> shared_segment::allocate(std::size_t n) {
  constexpr std::size_t align = 64;
  n = (std::max<std::size_t>(n, 1) + align - 1) / align * align;
  std::lock_guard<std::mutex> guard{mtx_};
  std::size_t at = 0;
  for (auto& [offset, length] : used_) {
    if (offset - at >= n)
      break;
    at = offset + length;
  }
  if (at > size_ || size_ - at < n)
    return std::nullopt;
  used_.emplace(at, n);
  return at;
}

void shared_segment::release(std::size_t offset) {
  std::lock_guard<std::mutex> guard{mtx_};
  used_.erase(offset);
}

std::size_t shared_segment::in_use() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::size_t n = 0;
  for (auto& kv : used_)
    n += kv.second;
  return n;
}

} // namespace actorserve
