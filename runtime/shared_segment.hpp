// Memory shared between the node and one isolated worker process: an anonymous memfd segment the
// node creates and maps, whose descriptor the child inherits and maps too. The node writes a
// batch's input bytes into a region of it and sends the worker only where they are; the worker's
// tensors are views of its own mapping. So a batch crosses the process boundary with one copy
// instead of serialization, two socket copies and deserialization. Pages are taken as regions
// are first used (first fit from the start keeps reusing the same ones).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace actorserve {

class shared_segment {
public:
  /// A new segment of `bytes` (virtual size), mapped here; its descriptor is close-on-exec
  /// (give it to one child with posix_spawn_file_actions_adddup2). Throws std::runtime_error.
  static std::shared_ptr<shared_segment> create(std::size_t bytes);
  /// Maps an inherited descriptor of a segment of `bytes` (the child's side) and closes it.
  static std::shared_ptr<shared_segment> attach(int fd, std::size_t bytes);

  ~shared_segment();
  shared_segment(const shared_segment&) = delete;
  shared_segment& operator=(const shared_segment&) = delete;

  int fd() const { return fd_; } // -1 once closed (the child's side)
  std::size_t size() const { return size_; }
  uint8_t* data() const { return base_; }

  /// Reserves `n` bytes (at a 64-byte boundary) and returns their offset; nullopt when no free
  /// range is large enough.
  std::optional<std::size_t> allocate(std::size_t n);
  /// Frees the range `allocate` returned at `offset` (unknown offsets are ignored).
  void release(std::size_t offset);
  /// Bytes reserved now.
  std::size_t in_use() const;

private:
  shared_segment(int fd, uint8_t* base, std::size_t size) : fd_(fd), base_(base), size_(size) {}

  int fd_;
  uint8_t* base_;
  std::size_t size_;
  mutable std::mutex mtx_;
  std::map<std::size_t, std::size_t> used_; // offset -> length
};

} // namespace actorserve
