#include "net/kserve/client_shm.hpp"

#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "runtime/error.hpp"
#include "runtime/json_text.hpp"

namespace actorserve {

namespace {

caf::error bad(std::string message) {
  return make_error(errc::invalid_input, std::move(message));
}

std::string errno_text(int e) {
  return std::strerror(e);
}

/// What a shared memory name may be: shm_open's "/name" (one slash, at the start).
caf::error check_key(const std::string& key) {
  if (key.size() < 2 || key.size() > 255 || key[0] != '/'
      || key.find('/', 1) != std::string::npos || key.find('\0') != std::string::npos)
    return bad("shared memory key " + json_quote(key)
               + " is not a POSIX shared memory name: '/' and 1 to 254 more characters, no other "
                 "'/' (as shm_open takes it)");
  return {};
}

/// Bytes a region's reads hold, counted in the request body budget until the last holder lets go.
struct held_bytes {
  std::unique_ptr<uint8_t[]> bytes;
  std::atomic<uint64_t>* used = nullptr;
  uint64_t counted = 0;
  ~held_bytes() {
    if (used)
      used->fetch_sub(counted);
  }
};

} // namespace

caf::expected<std::shared_ptr<shm_region>> shm_region::open(std::string name, std::string key,
                                                            uint64_t offset, uint64_t byte_size,
                                                            std::optional<uid_t> owner) {
  if (auto err = check_key(key))
    return err;
  if (byte_size == 0)
    return bad("shared memory region '" + name + "': byte_size must be at least 1");
  bool writable = true;
  int fd = ::shm_open(key.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0 && (errno == EACCES || errno == EROFS)) {
    writable = false; // (inputs only)
    fd = ::shm_open(key.c_str(), O_RDONLY | O_CLOEXEC, 0);
  }
  if (fd < 0)
    return bad("shared memory region '" + name + "': cannot open shared memory object "
               + json_quote(key) + ": " + errno_text(errno));
  std::shared_ptr<shm_region> r{new shm_region};
  r->fd_ = fd; // (closed by the region from here on)
  r->name_ = std::move(name);
  r->key_ = std::move(key);
  r->offset_ = offset;
  r->byte_size_ = byte_size;
  r->writable_ = writable;
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return bad("shared memory region '" + r->name_ + "': " + errno_text(errno));
  const auto size = static_cast<uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode))
    return bad("shared memory region '" + r->name_ + "': " + json_quote(r->key_)
               + " is not a shared memory object");
  if (owner && st.st_uid != *owner)
    return bad("shared memory region '" + r->name_ + "': " + json_quote(r->key_)
               + " belongs to user " + std::to_string(st.st_uid) + ", not to the client (user "
               + std::to_string(*owner) + "): a client registers only its own objects "
               "(http.shared_memory_owner_check)");
  if (offset > size || byte_size > size - offset)
    return bad("shared memory region '" + r->name_ + "': offset " + std::to_string(offset)
               + " + byte_size " + std::to_string(byte_size) + " passes the end of "
               + json_quote(r->key_) + " (" + std::to_string(size) + " bytes)");
  return r;
}

shm_region::~shm_region() {
  if (fd_ >= 0)
    ::close(fd_);
}

caf::error shm_region::check_range(uint64_t at, uint64_t n, const std::string& what) const {
  if (at > byte_size_ || n > byte_size_ - at)
    return bad(what + ": shared_memory_offset " + std::to_string(at)
               + " + shared_memory_byte_size " + std::to_string(n) + " passes the end of region '"
               + name_ + "' (" + std::to_string(byte_size_) + " bytes)");
  return {};
}

caf::expected<byte_buffer> shm_region::read(uint64_t at, uint64_t n, const std::string& what,
                                            std::atomic<uint64_t>* used, uint64_t limit,
                                            uint64_t own) const {
  if (auto err = check_range(at, n, what))
    return err;
  if (n == 0)
    return byte_buffer{};
  auto held = std::make_shared<held_bytes>();
  if (used) {
    auto before = used->fetch_add(n);
    if (before + n > limit) {
      used->fetch_sub(n);
      if (own + n > limit)
        return make_error(errc::payload_too_large,
                          what + ": its " + std::to_string(n)
                            + " bytes from shared memory and the request's other "
                            + std::to_string(own) + " pass the limit of " + std::to_string(limit)
                            + " bytes (http.max_inflight_body_bytes)");
      return make_error(errc::overloaded,
                        "overloaded: " + what + ": its " + std::to_string(n)
                          + " bytes from shared memory would pass the limit on request bytes "
                            "held at once (http.max_inflight_body_bytes); try again");
    }
    held->used = used;
    held->counted = n;
  }
  held->bytes.reset(new (std::nothrow) uint8_t[n]);
  if (!held->bytes)
    return make_error(errc::overloaded, "overloaded: no memory for " + what + "'s "
                                          + std::to_string(n) + " bytes; try again");
  uint64_t done = 0;
  while (done < n) {
    auto r = ::pread(fd_, held->bytes.get() + done, n - done,
                     static_cast<off_t>(offset_ + at + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return bad(what + ": reading shared memory region '" + name_ + "' failed: "
                 + errno_text(errno));
    if (r == 0)
      return bad(what + ": shared memory region '" + name_ + "' ends after "
                 + std::to_string(at + done) + " of its registered " + std::to_string(byte_size_)
                 + " bytes: " + json_quote(key_) + " was truncated since it was registered");
    done += static_cast<uint64_t>(r);
  }
  auto* p = held->bytes.get();
  return byte_buffer::view(std::move(held), p, n);
}

caf::error shm_region::write(uint64_t at, const uint8_t* p, uint64_t n,
                             const std::string& what) const {
  if (auto err = check_range(at, n, what))
    return err;
  if (!writable_)
    return bad(what + ": shared memory region '" + name_ + "' is read-only for the server ("
               + json_quote(key_) + " could not be opened for writing)");
  // Writing past the object's end would grow it: a truncated object is an error instead.
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < offset_ + at + n)
    return bad(what + ": shared memory region '" + name_ + "' no longer holds its registered "
               + std::to_string(byte_size_) + " bytes: " + json_quote(key_)
               + " was truncated since it was registered");
  uint64_t done = 0;
  while (done < n) {
    auto r = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(offset_ + at + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return bad(what + ": writing shared memory region '" + name_ + "' failed: "
                 + errno_text(r < 0 ? errno : ENOSPC));
    done += static_cast<uint64_t>(r);
  }
  return {};
}

caf::expected<std::shared_ptr<const shm_region>>
shm_registry::add(std::string name, std::string key, uint64_t offset, uint64_t byte_size,
                  std::optional<uid_t> owner) {
  if (name.empty() || name.size() > 256 || valid_utf8(name) != name)
    return bad("a shared memory region's name must be 1 to 256 bytes of UTF-8");
  if (!key_prefixes_.empty()
      && std::none_of(key_prefixes_.begin(), key_prefixes_.end(),
                      [&](const std::string& p) { return key.rfind(p, 0) == 0; })) {
    std::string allowed;
    for (auto& p : key_prefixes_)
      allowed += (allowed.empty() ? "" : ", ") + json_quote(p);
    return make_error(errc::invalid_input,
                      "shared memory region '" + name + "': key " + json_quote(valid_utf8(key))
                        + " does not start with one the server takes (" + allowed
                        + "; http.shared_memory_key_prefixes)");
  }
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (regions_.count(name))
      return bad("shared memory region '" + name
                 + "' is already registered; unregister it first");
    if (regions_.size() >= max_regions)
      return make_error(errc::overloaded, "shared memory region '" + name + "': "
                                            + std::to_string(max_regions)
                                            + " regions are registered, the most the server "
                                              "holds; unregister some first");
  }
  auto region = shm_region::open(name, std::move(key), offset, byte_size, owner);
  if (!region)
    return std::move(region.error());
  std::shared_ptr<const shm_region> added = std::move(*region);
  std::lock_guard<std::mutex> guard{mutex_};
  if (!regions_.emplace(name, added).second) // (registered meanwhile)
    return bad("shared memory region '" + name + "' is already registered; unregister it first");
  return added;
}

caf::expected<std::shared_ptr<const shm_region>>
shm_registry::find(std::string_view name) const {
  std::lock_guard<std::mutex> guard{mutex_};
  if (auto it = regions_.find(name); it != regions_.end())
    return it->second;
  return bad("no shared memory region '" + std::string(name) + "' is registered");
}

std::vector<std::shared_ptr<const shm_region>> shm_registry::list() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<std::shared_ptr<const shm_region>> out;
  for (auto& [name, region] : regions_)
    out.push_back(region);
  return out;
}

std::vector<std::string> shm_registry::remove(std::string_view name) {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<std::string> removed;
  if (name.empty()) {
    for (auto& [n, region] : regions_)
      removed.push_back(n);
    regions_.clear();
  } else if (auto it = regions_.find(name); it != regions_.end()) {
    removed.push_back(it->first);
    regions_.erase(it);
  }
  return removed;
}

std::string shm_status_json(const std::vector<std::shared_ptr<const shm_region>>& regions) {
  std::string s = "[";
  for (auto& r : regions) {
    if (s.size() > 1)
      s += ',';
    s += "{\"name\":" + json_quote(r->name()) + ",\"key\":" + json_quote(r->key())
         + ",\"offset\":" + std::to_string(r->offset())
         + ",\"byte_size\":" + std::to_string(r->byte_size()) + "}";
  }
  return s + "]";
}

} // namespace actorserve
