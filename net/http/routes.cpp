#include "net/http/routes.hpp"

#include <array>
#include <iterator>
#include <vector>

namespace actorserve {

namespace http = boost::beast::http;

namespace {

/// `s` with its %XX escapes decoded (as Triton's clients quote region names); nullopt where an
/// escape is malformed.
std::optional<std::string> percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size())
      return std::nullopt;
    int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

/// "/v2/systemsharedmemory[/region/{name}]/status|register|unregister" (register needs a name).
route parse_shm_route(std::string_view target) {
  route r;
  constexpr std::string_view prefix = "/v2/systemsharedmemory/";
  if (target.substr(0, prefix.size()) != prefix)
    return r;
  auto rest = target.substr(prefix.size());
  auto slash = rest.rfind('/');
  auto action = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
  auto head = slash == std::string_view::npos ? std::string_view{} : rest.substr(0, slash);
  if (!head.empty()) {
    constexpr std::string_view region = "region/";
    if (head.substr(0, region.size()) != region || head.size() == region.size()
        || head.substr(region.size()).find('/') != std::string_view::npos)
      return r;
    auto name = percent_decoded(head.substr(region.size()));
    if (!name || name->empty())
      return r;
    r.region = std::move(*name);
  }
  if (action == "status")
    r.kind = route::shm_status;
  else if (action == "unregister")
    r.kind = route::shm_unregister;
  else if (action == "register" && !r.region.empty())
    r.kind = route::shm_register;
  return r;
}

/// "/v2/repository/models/{name}/load|unload" (Triton's model repository extension), and
/// ".../instances" (the instances it runs, as TorchServe's scale-workers API sets them); `rest`
/// is what follows "/v2/repository/models/".
route parse_repository_route(std::string_view rest) {
  route r;
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0)
    return r;
  auto action = rest.substr(slash + 1);
  r.model = std::string(rest.substr(0, slash));
  if (action == "load")
    r.kind = route::model_load;
  else if (action == "unload")
    r.kind = route::model_unload;
  else if (action == "instances")
    r.kind = route::model_instances;
  return r;
}

} // namespace

route parse_route(std::string_view target) {
  route r;
  if (auto q = target.find('?'); q != std::string_view::npos)
    target = target.substr(0, q);
  static constexpr std::pair<std::string_view, route::kind_t> fixed[] = {
    {"/v2", route::server_meta},          {"/v2/", route::server_meta},
    {"/v2/health/live", route::health_live}, {"/v2/health/ready", route::health_ready},
    {"/metrics", route::prometheus},      {"/v2/admin/faults", route::admin_faults},
    {"/v2/models/stats", route::all_stats}, {"/v2/repository/index", route::repository_index}};
  for (auto& [path, kind] : fixed)
    if (target == path) {
      r.kind = kind;
      return r;
    }
  constexpr std::string_view repository = "/v2/repository/models/";
  if (target.substr(0, repository.size()) == repository)
    return parse_repository_route(target.substr(repository.size()));
  constexpr std::string_view prefix = "/v2/models/";
  if (target.substr(0, prefix.size()) != prefix)
    return parse_shm_route(target);
  std::vector<std::string_view> parts;
  auto rest = target.substr(prefix.size());
  while (!rest.empty()) {
    auto slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos)
      break;
    rest = rest.substr(slash + 1);
  }
  if (parts.empty() || parts[0].empty())
    return r;
  r.model = std::string(parts[0]);
  std::size_t i = 1;
  if (parts.size() >= 3 && parts[1] == "versions") {
    r.version = std::string(parts[2]);
    i = 3;
  }
  if (parts.size() == i)
    r.kind = route::model_meta;
  else if (parts.size() == i + 1 && parts[i] == "ready")
    r.kind = route::model_ready;
  else if (parts.size() == i + 1 && parts[i] == "infer")
    r.kind = route::model_infer;
  else if (parts.size() == i + 1 && parts[i] == "stats")
    r.kind = route::model_stats;
  else if (parts.size() == i + 1 && parts[i] == "config")
    r.kind = route::model_config;
  return r;
}

const std::vector<route_spec>& route_table() {
  using g = api_group;
  constexpr auto get = http::verb::get;
  constexpr auto post = http::verb::post;
  static const std::vector<route_spec> table{
    {route::health_live, get, "/v2/health/live", g::health},
    {route::health_ready, get, "/v2/health/ready", g::health},
    {route::server_meta, get, "/v2", g::metadata},
    {route::model_meta, get, "/v2/models/{m}[/versions/{v}]", g::metadata},
    {route::model_ready, get, "/v2/models/{m}[/versions/{v}]/ready", g::health},
    {route::model_infer, post, "/v2/models/{m}[/versions/{v}]/infer", g::inference},
    {route::model_stats, get, "/v2/models/{m}[/versions/{v}]/stats", g::statistics},
    {route::model_config, get, "/v2/models/{m}[/versions/{v}]/config", g::model_config},
    {route::all_stats, get, "/v2/models/stats", g::statistics},
    {route::prometheus, get, "/metrics", g::metrics},
    {route::admin_faults, post, "/v2/admin/faults", g::admin, true},
    {route::repository_index, post, "/v2/repository/index", g::model_repository},
    {route::shm_status, get, "/v2/systemsharedmemory[/region/{r}]/status", g::shared_memory},
    {route::shm_register, post, "/v2/systemsharedmemory/region/{r}/register", g::shared_memory,
     true},
    {route::shm_unregister, post, "/v2/systemsharedmemory[/region/{r}]/unregister",
     g::shared_memory, true},
    {route::model_load, post, "/v2/repository/models/{m}/load", g::model_repository, true},
    {route::model_unload, post, "/v2/repository/models/{m}/unload", g::model_repository, true},
    {route::model_instances, post, "/v2/repository/models/{m}/instances", g::model_repository,
     true},
  };
  return table;
}

const route_spec* spec_of(route::kind_t kind) {
  // (Every request asks: the table's rows indexed by kind, once.)
  static const auto by_kind = [] {
    std::array<const route_spec*, route::model_instances + 1> index{};
    for (auto& spec : route_table())
      index[spec.kind] = &spec;
    return index;
  }();
  return static_cast<std::size_t>(kind) < by_kind.size() ? by_kind[kind] : nullptr;
}

std::optional<api_group> group_of(route::kind_t kind) {
  if (auto* spec = spec_of(kind))
    return spec->group;
  return std::nullopt;
}

bool changes_state(route::kind_t kind) {
  auto* spec = spec_of(kind);
  return spec && spec->changes_state;
}

std::optional<std::pair<http::status, std::string>>
framing_error(const http::request_header<>& req, bool chunked) {
  auto bad = [](std::string what) {
    return std::make_pair(http::status::bad_request, std::move(what));
  };
  if (req.count(http::field::transfer_encoding) > 0) {
    if (req.count(http::field::content_length) > 0)
      return bad("a request may not have both Transfer-Encoding and Content-Length (RFC 9112 "
                 "6.1)");
    if (!chunked)
      return bad("Transfer-Encoding '" + std::string(req[http::field::transfer_encoding])
                 + "' does not end in chunked: the body's length is unknown (RFC 9112 6.3)");
  }
  if (req.version() >= 11 && req.count(http::field::host) != 1)
    return bad(req.count(http::field::host) == 0
                 ? "an HTTP/1.1 request needs a Host header (RFC 9112 3.2)"
                 : "a request may have only one Host header (RFC 9112 3.2)");
  if (std::size_t(std::distance(req.begin(), req.end())) > header_fields_limit)
    return std::make_pair(http::status::request_header_fields_too_large,
                          "a request may have at most " + std::to_string(header_fields_limit)
                            + " header fields");
  return std::nullopt;
}
} // namespace actorserve
