#include "runtime/byte_buffer.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

namespace actorserve {

byte_buffer::byte_buffer(std::vector<uint8_t> bytes) {
  own(std::move(bytes));
}

byte_buffer::byte_buffer(byte_buffer&& other) noexcept
  : vec_(std::move(other.vec_)), owner_(std::move(other.owner_)), ptr_(other.ptr_),
    size_(other.size_) {
  other.ptr_ = nullptr;
  other.size_ = 0;
}

byte_buffer& byte_buffer::operator=(byte_buffer&& other) noexcept {
  if (this != &other) {
    vec_ = std::move(other.vec_);
    owner_ = std::move(other.owner_);
    ptr_ = other.ptr_;
    size_ = other.size_;
    other.ptr_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

bool byte_buffer::unique() const {
  if (!vec_ || vec_.use_count() != 1)
    return false;
  // The last other holder may have just let go on another thread: see its reads before writing.
  std::atomic_thread_fence(std::memory_order_acquire);
  return true;
}

void byte_buffer::own(std::vector<uint8_t> bytes) {
  owner_.reset();
  if (bytes.empty()) {
    vec_.reset();
    ptr_ = nullptr;
    size_ = 0;
    return;
  }
  vec_ = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  ptr_ = vec_->data();
  size_ = vec_->size();
}

byte_buffer byte_buffer::view(std::shared_ptr<const void> owner, const uint8_t* p, std::size_t n) {
  byte_buffer b;
  if (n == 0)
    return b;
  b.owner_ = std::move(owner);
  b.ptr_ = p;
  b.size_ = n;
  return b;
}

byte_buffer byte_buffer::slice(std::size_t offset, std::size_t n) const {
  if (offset > size_ || n > size_ - offset)
    throw std::out_of_range("byte_buffer::slice: bytes [" + std::to_string(offset) + ", "
                            + std::to_string(offset + n) + ") of " + std::to_string(size_));
  if (n == size_)
    return *this;
  std::shared_ptr<const void> keep = vec_ ? std::shared_ptr<const void>(vec_) : owner_;
  return view(std::move(keep), ptr_ + offset, n);
}

bool byte_buffer::shared() const {
  return vec_ ? !unique() : size_ > 0;
}

uint8_t* byte_buffer::mutable_data() {
  if (size_ == 0)
    return nullptr;
  if (!unique())
    own(std::vector<uint8_t>(ptr_, ptr_ + size_));
  return vec_->data();
}

void byte_buffer::resize(std::size_t n) {
  if (n == size_ && (size_ == 0 || unique()))
    return;
  if (unique()) {
    vec_->resize(n);
    ptr_ = vec_->data();
    size_ = n;
    if (n == 0)
      own({});
    return;
  }
  std::vector<uint8_t> v(n, 0);
  std::copy(ptr_, ptr_ + std::min(n, size_), v.begin());
  own(std::move(v));
}

void byte_buffer::assign(std::size_t n, uint8_t value) {
  if (unique()) {
    vec_->assign(n, value);
    ptr_ = vec_->data();
    size_ = n;
    if (n == 0)
      own({});
    return;
  }
  own(std::vector<uint8_t>(n, value));
}

void byte_buffer::assign(const uint8_t* first, const uint8_t* last) {
  own(std::vector<uint8_t>(first, last));
}

bool operator==(const byte_buffer& a, const byte_buffer& b) {
  return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.ptr_, b.ptr_, a.size_) == 0);
}

bool operator==(const byte_buffer& a, const std::vector<uint8_t>& b) {
  return a.size() == b.size() && (b.empty() || std::memcmp(a.data(), b.data(), b.size()) == 0);
}

} // namespace actorserve
