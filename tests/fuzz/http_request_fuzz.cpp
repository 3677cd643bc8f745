// The HTTP request reader and router on any bytes: Beast's parser (with the server's header and
// body limits) reads a request; a complete header goes through the framing checks, and its target
// through the router and its API group. Errors are answers, never crashes.
#include <cstddef>
#include <cstdint>

#include <boost/beast/http.hpp>

#include "net/http/routes.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  namespace http = boost::beast::http;
  using namespace actorserve;
  http::request_parser<http::string_body> p;
  p.header_limit(64 * 1024);
  p.body_limit(1 << 20);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < size && !ec && !p.is_done()) {
    auto n = p.put(boost::asio::buffer(data + used, size - used), ec);
    if (n == 0)
      break;
    used += n;
  }
  if (p.is_header_done()) {
    auto bad = framing_error(p.get(), p.chunked());
    auto r = parse_route(p.get().target());
    if (r.kind != route::not_found && !group_of(r.kind))
      __builtin_trap(); // every route is in a group
    (void)bad;
  }
  return 0;
}
