// Triton's system shared memory extension: a client on the same machine puts tensors in a POSIX
// shared memory object (shm_open) it registers as a named region, and its requests name
// (region, offset, byte_size) instead of carrying the bytes; outputs may be written there too.
// Off unless the deployment allows it (http.allow_shared_memory): a registered key lets HTTP
// clients read and write that shared memory object with the server's rights.
//
// The server reads and writes a region with pread/pwrite on the object's descriptor, never
// through a mapping: a client that shrinks its object (ftruncate) while a request is in flight
// then gets an error, where a mapping would have killed the whole node with SIGBUS.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "runtime/byte_buffer.hpp"

namespace actorserve {

/// One registered region: bytes [offset, offset + byte_size) of the shared memory object `key`,
/// whose descriptor it holds open (the client may unlink the name meanwhile). Thread-safe.
class shm_region {
public:
  /// Opens `key` ("/name", as shm_open takes it) read-write, or read-only where the server may
  /// only read it (outputs then cannot go there). Errors (invalid_input) say what is wrong:
  /// no such object, no permission, a range past its end.
  /// With `owner`, an object another user owns is refused.
  static caf::expected<std::shared_ptr<shm_region>> open(std::string name, std::string key,
                                                         uint64_t offset, uint64_t byte_size,
                                                         std::optional<uid_t> owner = std::nullopt);
  ~shm_region();
  shm_region(const shm_region&) = delete;
  shm_region& operator=(const shm_region&) = delete;

  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  uint64_t offset() const { return offset_; }
  uint64_t byte_size() const { return byte_size_; }
  bool writable() const { return writable_; }

  /// An error (invalid_input) unless [at, at + n) lies within the region; `what` names the
  /// tensor for the message.
  caf::error check_range(uint64_t at, uint64_t n, const std::string& what) const;

  /// Copies `n` bytes at `at` (within the region) into a new buffer. With `used`, its bytes
  /// count there for as long as any buffer holds them, refused past `limit`: overloaded, or
  /// payload_too_large where they and the `own` bytes the request holds already could never fit.
  caf::expected<byte_buffer> read(uint64_t at, uint64_t n, const std::string& what,
                                  std::atomic<uint64_t>* used = nullptr, uint64_t limit = 0,
                                  uint64_t own = 0) const;

  /// Writes `n` bytes at `at` (within the region).
  caf::error write(uint64_t at, const uint8_t* p, uint64_t n, const std::string& what) const;

private:
  shm_region() = default;
  std::string name_, key_;
  uint64_t offset_ = 0, byte_size_ = 0;
  int fd_ = -1;
  bool writable_ = false;
};

/// The registered regions by name. Thread-safe: every I/O thread registers and looks up.
class shm_registry {
public:
  static constexpr std::size_t max_regions = 1024;

  /// Only keys that start with one of `key_prefixes` may be registered (none: any key).
  explicit shm_registry(std::vector<std::string> key_prefixes = {})
    : key_prefixes_(std::move(key_prefixes)) {}

  /// Registers a region and returns it; invalid_input when the name is taken or invalid, the
  /// key cannot be opened or the range passes the object's end; overloaded past max_regions.
  /// With `owner`, only an object that user owns is registered (the client's own).
  caf::expected<std::shared_ptr<const shm_region>> add(std::string name, std::string key,
                                                       uint64_t offset, uint64_t byte_size,
                                                       std::optional<uid_t> owner = std::nullopt);

  /// The region called `name`, or an error (invalid_input) saying it is not registered.
  caf::expected<std::shared_ptr<const shm_region>> find(std::string_view name) const;

  /// All regions by name (for status).
  std::vector<std::shared_ptr<const shm_region>> list() const;

  /// Unregisters `name` (every region when empty); returns the names removed. Requests that
  /// already hold a region finish with it.
  std::vector<std::string> remove(std::string_view name);

private:
  std::vector<std::string> key_prefixes_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const shm_region>, std::less<>> regions_;
};

/// Regions as the extension's status answer lists them: [{"name","key","offset","byte_size"}].
std::string shm_status_json(const std::vector<std::shared_ptr<const shm_region>>& regions);

} // namespace actorserve
