#include "runtime/error.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace actorserve {

const char* to_string(errc x) {
  switch (x) {
    case errc::none: return "none";
    case errc::invalid_input: return "invalid_input";
    case errc::model_not_found: return "model_not_found";
    case errc::payload_too_large: return "payload_too_large";
    case errc::overloaded: return "overloaded";
    case errc::not_ready: return "not_ready";
    case errc::deadline_exceeded: return "deadline_exceeded";
    case errc::inference_failed: return "inference_failed";
    case errc::worker_failed: return "worker_failed";
    case errc::cancelled: return "cancelled";
    case errc::invalid_config: return "invalid_config";
    case errc::internal: return "internal";
    case errc::escalated: return "escalated";
    case errc::forbidden: return "forbidden";
    case errc::upstream_failed: return "upstream_failed";
  }
  return "unknown";
}

caf::error make_error(errc code, std::string message) {
  return caf::make_error(code, std::move(message));
}

std::string error_message(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_timeout: return "the request timed out inside the server";
      case caf::sec::request_receiver_down: // e.g. a batcher its supervisor was stopping
        return "not available: the actor serving the request stopped before taking it (it is "
               "being restarted or shut down); try again";
      default: break;
    }
  }
  return caf::to_string(err);
}

errc error_code(const caf::error& err) {
  if (!err)
    return errc::none;
  if (err.category() == caf::atom("actorserve"))
    return static_cast<errc>(err.code());
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_timeout: return errc::deadline_exceeded;
      case caf::sec::request_receiver_down: return errc::not_ready; // nothing was done: 503
      default: break;
    }
  }
  return errc::internal;
}

} // namespace actorserve
