// A blocking Redis connection (hiredis) for the event-queue ingress's own threads, and what the
// stream commands answer, as plain values: the code that reads replies is tested without a
// server, and nothing outside redis_client.cpp sees hiredis.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

namespace actorserve {

/// One RESP2 reply.
struct redis_value {
  enum kind_t { nil, string, integer, array, error, status } kind = nil;
  std::string str; // string, error, status
  int64_t number = 0;
  std::vector<redis_value> elements;

  bool is_error() const { return kind == error; }
};

/// One entry of a stream: its ID and its field/value pairs (binary-safe). `deleted`: the
/// entry is pending in the group but gone from the stream (XDEL'd or trimmed): no fields.
struct stream_entry {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;
  bool deleted = false;
  uint64_t deliveries = 1; // how often the group delivered it (XPENDING), this time included
};

/// The entries of an XREADGROUP reply for a single stream (nil: none arrived in time).
/// nullopt where the reply is not shaped as XREADGROUP's.
std::optional<std::vector<stream_entry>> xreadgroup_entries(const redis_value& reply);

/// XAUTOCLAIM's reply (Redis >= 7: [cursor, entries, deleted IDs]): the next cursor and the
/// entries (those deleted from the stream meanwhile with `deleted` set).
struct autoclaim_result {
  std::string cursor;
  std::vector<stream_entry> entries;
};
std::optional<autoclaim_result> xautoclaim_entries(const redis_value& reply);

/// The delivery count of each entry of an extended XPENDING reply ([[id, consumer, idle,
/// deliveries], ...]), by ID.
std::vector<std::pair<std::string, uint64_t>> xpending_deliveries(const redis_value& reply);

class redis_connection {
public:
  struct options {
    std::string host = "127.0.0.1";
    uint16_t port = 6379;
    uint32_t db = 0;
    std::string username; // empty: AUTH with the password alone (when there is one)
    std::string password;
    std::chrono::milliseconds connect_timeout{2000};
  };

  /// Connects, authenticates and selects the database; the error names the server and cause.
  static caf::expected<std::unique_ptr<redis_connection>> open(const options& opts);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  /// How long a command may wait for its reply (0: forever); longer, and it fails.
  void set_timeout(std::chrono::milliseconds t);

  /// Sends the commands in one round trip and returns their replies in order (a command Redis
  /// refuses gives an `error` reply, not a failure). A failure is the connection's: it is then
  /// unusable.
  caf::expected<std::vector<redis_value>> pipeline(const std::vector<std::vector<std::string>>& cmds);
  caf::expected<redis_value> command(const std::vector<std::string>& args);

  /// Makes a command blocked in another thread fail at once (shuts the socket down); the
  /// connection is unusable after it. Thread-safe.
  void interrupt();

  const std::string& peer() const { return peer_; }

private:
  redis_connection() = default;
  struct context;
  context* ctx_ = nullptr;
  std::string peer_;
};

} // namespace actorserve
