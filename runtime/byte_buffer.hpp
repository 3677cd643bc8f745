// A tensor's bytes, shared rather than copied: copying a byte_buffer shares its bytes
// (copy-on-write), and a buffer can be a view of bytes something else keeps alive. So a request
// the batcher keeps for a retry, an input that is a slice of the HTTP body it arrived in, or an
// output that is a slice of its batch's output costs no copy. Writing (mutable_data, resize,
// assign) first makes the bytes this buffer's own. Copies may live on different threads: the
// shared bytes are never written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/serializer.hpp>
#include <caf/deserializer.hpp>

namespace actorserve {

class byte_buffer {
public:
  byte_buffer() = default;
  byte_buffer(std::vector<uint8_t> bytes); // NOLINT: takes them over, as `t.data = vector` reads
  byte_buffer(std::initializer_list<uint8_t> bytes) : byte_buffer(std::vector<uint8_t>(bytes)) {}
  byte_buffer(std::size_t n, uint8_t value) : byte_buffer(std::vector<uint8_t>(n, value)) {}

  byte_buffer(const byte_buffer&) = default;
  byte_buffer& operator=(const byte_buffer&) = default;
  byte_buffer(byte_buffer&& other) noexcept;
  byte_buffer& operator=(byte_buffer&& other) noexcept;

  /// `n` bytes at `p` that `owner` keeps alive (e.g. the request body they arrived in). They are
  /// never written through this buffer.
  static byte_buffer view(std::shared_ptr<const void> owner, const uint8_t* p, std::size_t n);

  /// Bytes [offset, offset + n) of this buffer, sharing them.
  byte_buffer slice(std::size_t offset, std::size_t n) const;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const uint8_t* data() const { return ptr_; }
  const uint8_t* begin() const { return ptr_; }
  const uint8_t* end() const { return ptr_ + size_; }
  uint8_t operator[](std::size_t i) const { return ptr_[i]; }

  /// Writable bytes; copies them first unless this buffer is their only holder.
  uint8_t* mutable_data();
  /// Resizes like std::vector (new bytes are zero); the bytes become this buffer's own.
  void resize(std::size_t n);
  void assign(std::size_t n, uint8_t value);
  void assign(const uint8_t* first, const uint8_t* last);

  /// Whether other buffers share these bytes or they belong to something else (tests, metrics).
  bool shared() const;

  friend bool operator==(const byte_buffer& a, const byte_buffer& b);
  friend bool operator!=(const byte_buffer& a, const byte_buffer& b) { return !(a == b); }
  friend bool operator==(const byte_buffer& a, const std::vector<uint8_t>& b);

  // Serialized exactly as a std::vector<uint8_t> (a sequence of raw bytes).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, byte_buffer& x) {
    if constexpr (std::is_base_of<caf::serializer, Inspector>::value) {
      auto n = x.size_;
      return caf::error::eval([&] { return f.begin_sequence(n); },
                              [&] {
                                return n > 0 ? f.apply_raw(n, const_cast<uint8_t*>(x.ptr_))
                                             : caf::error{};
                              },
                              [&] { return f.end_sequence(); });
    } else if constexpr (std::is_base_of<caf::deserializer, Inspector>::value) {
      std::size_t n = 0;
      return caf::error::eval([&] { return f.begin_sequence(n); },
                              [&] {
                                x.resize(n);
                                return n > 0 ? f.apply_raw(n, x.mutable_data()) : caf::error{};
                              },
                              [&] { return f.end_sequence(); });
    } else { // printing (to_string, deep_to_string)
      std::vector<uint8_t> copy(x.begin(), x.end());
      return f(copy);
    }
  }

private:
  void own(std::vector<uint8_t> bytes);
  bool unique() const; // the bytes are a vector of ours that nothing else holds

  std::shared_ptr<std::vector<uint8_t>> vec_; // set when the bytes are a whole vector of ours
  std::shared_ptr<const void> owner_;         // keeps a view's or slice's bytes alive
  const uint8_t* ptr_ = nullptr;
  std::size_t size_ = 0;
};

} // namespace actorserve
