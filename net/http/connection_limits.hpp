// net/http/connection_limits.hpp — how many connections the HTTP front holds, in all and per client
// address, so that no client (or few) can take every descriptor or thread's attention: a
// connection past either bound is refused at once. Thread-safe (sessions end on any I/O thread).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace actorserve {

class connection_limits {
public:
  /// At most `total` connections at once, and at most `per_client` from one address (0: no
  /// bound of that kind).
  connection_limits(uint32_t total, uint32_t per_client) : total_(total), per_client_(per_client) {}

  /// Takes a place for a connection from `client`; or, where it would pass a bound, none and the
  /// reason (naming the bound and its setting).
  std::optional<std::string> admit(const std::string& client);

  /// Gives back the place of a connection `admit` let in.
  void release(const std::string& client);

  uint32_t open() const;

private:
  mutable std::mutex mtx_;
  uint32_t total_, per_client_;
  uint32_t open_ = 0;
  std::unordered_map<std::string, uint32_t> by_client_;
};

} // namespace actorserve
