// The project's one error enum, registered with CAF so errors cross actors and nodes as values.
// Each error carries a human-readable message naming what was wrong; net/ maps codes to HTTP.
#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace actorserve {

enum class errc : uint8_t {
  none = 0,
  invalid_input,     // the request itself is wrong (shape, datatype, JSON, parameters)
  model_not_found,   // no such model or version
  payload_too_large, // body over the configured limit
  overloaded,        // a bounded queue is full
  not_ready,         // no worker of the model can take work
  deadline_exceeded, // the request's deadline passed before it was answered
  inference_failed,  // the backend threw or returned something unusable
  worker_failed,     // the worker died or was lost while running the request
  cancelled,         // the client closed its connection before the request ran
  invalid_config,    // deployment file errors
  internal,          // a bug: should never reach a client
  escalated,         // a supervisor exceeded its restart intensity and stopped its children
  forbidden,         // the request asks for something the deployment does not allow (a host)
  upstream_failed,   // a server the node fetched from failed (HTTP error, refused, bad answer)
};

/// The last code: what tables indexed by code are sized by (add new codes before it changes).
constexpr errc last_errc = errc::upstream_failed;

/// Short name of a code ("invalid_input").
const char* to_string(errc x);

/// Builds a CAF error with our category and `message` as its context.
caf::error make_error(errc code, std::string message);

/// The message an error carries, or CAF's rendering of it when it carries none (e.g. CAF's own
/// `sec` values such as request_timeout).
std::string error_message(const caf::error& err);

/// The project code of `err`, mapping CAF's own timeout and receiver-down codes onto ours.
errc error_code(const caf::error& err);

} // namespace actorserve

CAF_ERROR_CODE_ENUM(actorserve::errc, "actorserve")
