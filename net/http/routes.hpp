// net/http/routes.hpp — what an HTTP request asks for, before any handler runs: the route its
// target names (KServe v2, Triton's extensions, the node's own), the API group that route is in,
// whether it changes the server's state, and whether the request's framing is acceptable at all
// (RFC 9112). Pure functions: unit-tested and fuzzed without a server.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>

#include "runtime/api_access.hpp"

namespace actorserve {

/// The most header fields a request may have (nginx's and Go's defaults are of that order).
constexpr std::size_t header_fields_limit = 100;

/// The largest body a request other than inference may have: a control request's JSON is small,
/// and a large document of small numbers would take many times its size once parsed.
constexpr std::size_t control_body_limit = 64 * 1024;

struct route {
  enum kind_t { not_found, health_live, health_ready, server_meta, model_meta, model_ready,
                model_infer, model_stats, model_config, all_stats, prometheus,
                admin_faults, repository_index, shm_status, shm_register,
                shm_unregister, model_load, model_unload,
                model_instances /* last: tables index by kind */ }
    kind = not_found;
  std::string model;
  std::string version;
  std::string region; // a shared memory region's name (percent-decoded); empty: all
};

/// One row of the route table: a route's method (GET also answers HEAD), its path pattern, its
/// API group (server.restricted_apis) and whether it changes the server's state (what a web page
/// must not make a browser send).
struct route_spec {
  route::kind_t kind;
  boost::beast::http::verb method;
  std::string_view pattern;
  api_group group;
  bool changes_state = false;
};

/// Every route but not_found, one row each.
const std::vector<route_spec>& route_table();

/// The row of `kind`; null for not_found.
const route_spec* spec_of(route::kind_t kind);

/// Splits "/v2/models/{name}[/versions/{v}][/ready|/infer|/stats|/config]", the health,
/// metadata, statistics, repository and shared memory paths and /metrics (a query is ignored).
route parse_route(std::string_view target);

/// The API group a route belongs to (server.restricted_apis); nullopt for no route.
std::optional<api_group> group_of(route::kind_t kind);

/// Routes that change the server's state: what a web page must not make a browser send.
bool changes_state(route::kind_t kind);

/// What makes a request's framing ambiguous or unacceptable (RFC 9112 3.2, 6.1, 6.3), which a
/// proxy in front could read differently: the status and message to answer (closing the
/// connection), or nullopt. `chunked`: the parser found Transfer-Encoding ending in chunked.
std::optional<std::pair<boost::beast::http::status, std::string>>
framing_error(const boost::beast::http::request_header<>& req, bool chunked);

} // namespace actorserve
