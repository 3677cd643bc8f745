// runtime/api_access.hpp — who may call what: the API groups of both fronts (Triton's names) and
// the restrictions a deployment puts on them (server.restricted_apis): a restricted group is
// served only to requests that carry a configured header (HTTP) or metadata key (gRPC) with its
// configured value, as Triton's --http-restricted-api / --grpc-restricted-protocol.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace actorserve {

enum class api_group : uint8_t {
  health,           // liveness and readiness
  metadata,         // server and model metadata
  inference,        // inference
  model_config,     // a model's configuration
  model_repository, // repository index, model load and unload
  shared_memory,    // client shared memory regions: status, register, unregister
  statistics,       // Triton's statistics extension
  metrics,          // GET /metrics (Prometheus)
  admin,            // fault injection (where enabled)
};

/// "model-repository", ... (Triton's spelling).
const char* to_string(api_group g);
std::optional<api_group> parse_api_group(std::string_view name);
/// How error messages list them.
extern const char* const api_groups_text;

/// Why a model load or unload is refused where server.model_control is false (both fronts).
extern const char* const model_control_off;

/// Groups served only with header `header` (lower case) set to `value`.
struct api_restriction {
  std::vector<api_group> groups;
  std::string header;
  std::string value;
};

/// The restriction on `g` (a group is in one at most), or nullptr.
const api_restriction* restriction_of(const std::vector<api_restriction>& all, api_group g);

/// Why a request for group `g` that carries `presented` (the value of the restriction's header,
/// nullopt when absent) is refused, or nullopt where it may go on. The value is compared in
/// constant time.
std::optional<std::string> refusal(const std::vector<api_restriction>& all, api_group g,
                                   std::optional<std::string_view> presented);

} // namespace actorserve
