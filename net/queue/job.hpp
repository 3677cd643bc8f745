// The event-queue protocol: what the fields of a request entry ask (read_job) and the fields of
// its answer (answer_fields), as config/README.md documents them. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>

#include "net/queue/redis_client.hpp"
#include "runtime/config.hpp"

namespace actorserve {

using stream_fields = std::vector<std::pair<std::string, std::string>>;

/// A request entry, read.
struct queue_job {
  std::string entry_id;
  std::string reply_to; // the stream its answer goes to (always set, also when `problem` is)
  std::string model;
  std::string version;  // "" = the model's only one
  std::string body;     // a KServe v2 infer request: JSON, or JSON followed by binary tensor data
  std::optional<std::size_t> header_length; // the JSON part's length, when binary data follows
  std::optional<int64_t> deadline_ms;       // Unix time (ms) after which it is not run
  std::string traceparent;                  // W3C trace context, echoed in the answer
  caf::error problem; // set: the entry asks for nothing that can run; it is answered with this
};

/// Reads a request entry of queue `q`: fields `body` (required), `model` (required unless the
/// queue has one), `version`, `reply_to`, `header_length`, `deadline_ms`, `traceparent`. Any
/// other field, a repeated one, a malformed number or a body over max_entry_bytes is a problem
/// naming the field.
queue_job read_job(stream_entry&& entry, const queue_config& q);

/// What the dead-letter stream keeps of an entry given up after `deliveries` deliveries: its ID
/// and stream, why, and its own fields (model, version, reply_to, header_length, body).
stream_fields dead_letter_fields(const queue_job& job, uint64_t deliveries,
                                 const std::string& reason);

/// The fields of an answer to `job`: request (the entry's ID), model, status (HTTP's code),
/// body (the KServe v2 response, or {"error": ...}), header_length when binary data follows the
/// JSON, traceparent when the request had one.
stream_fields answer_fields(const queue_job& job, unsigned status, std::string body,
                            std::optional<std::size_t> header_length);

} // namespace actorserve
