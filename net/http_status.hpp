// The one place where error codes become HTTP status codes.
#pragma once

#include <caf/error.hpp>

namespace actorserve {

/// 400 bad input, 404 unknown model, 413 too large, 503 overloaded / not ready (with
/// Retry-After), 504 deadline exceeded, 500 for failures inside the server.
unsigned http_status(const caf::error& err);

} // namespace actorserve
