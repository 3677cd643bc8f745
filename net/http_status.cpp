#include "net/http_status.hpp"

#include "runtime/error.hpp"

namespace actorserve {

unsigned http_status(const caf::error& err) {
  switch (error_code(err)) {
    case errc::none: return 200;
    case errc::invalid_input: return 400;
    case errc::invalid_config: return 400;
    case errc::model_not_found: return 404;
    case errc::payload_too_large: return 413;
    case errc::overloaded: return 503;
    case errc::not_ready: return 503;
    case errc::deadline_exceeded: return 504;
    case errc::inference_failed: return 500;
    case errc::worker_failed: return 500;
    case errc::cancelled: return 499; // (nginx's "client closed request"; nobody reads it)
    case errc::internal: return 500;
    case errc::escalated: return 503;
    case errc::forbidden: return 403;
    case errc::upstream_failed: return 502;
  }
  return 500;
}

} // namespace actorserve
