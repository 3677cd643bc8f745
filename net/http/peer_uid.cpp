#include "net/http/peer_uid.hpp"

#include <charconv>
#include <vector>

#include "runtime/file_text.hpp"

namespace actorserve {
namespace {

/// The port of a "ADDRESS:PORT" field (hexadecimal), or nullopt.
std::optional<uint16_t> port_of(std::string_view field) {
  auto colon = field.rfind(':');
  if (colon == std::string_view::npos)
    return std::nullopt;
  unsigned port = 0;
  auto p = field.substr(colon + 1);
  auto r = std::from_chars(p.data(), p.data() + p.size(), port, 16);
  if (r.ec != std::errc{} || r.ptr != p.data() + p.size() || port > 0xffff)
    return std::nullopt;
  return static_cast<uint16_t>(port);
}

} // namespace

std::optional<uid_t> socket_owner_in(std::string_view table, uint16_t client_port,
                                     uint16_t server_port) {
  std::size_t at = table.find('\n'); // (the first line names the columns)
  while (at != std::string_view::npos && at + 1 < table.size()) {
    auto end = table.find('\n', at + 1);
    auto line = table.substr(at + 1, end == std::string_view::npos ? end : end - at - 1);
    at = end;
    // sl local rem st tx:rx tr:when retrnsmt uid ...
    std::vector<std::string_view> f;
    for (std::size_t i = 0; i < line.size() && f.size() < 8;) {
      while (i < line.size() && line[i] == ' ')
        ++i;
      auto j = line.find(' ', i);
      if (i < line.size())
        f.push_back(line.substr(i, j == std::string_view::npos ? line.size() - i : j - i));
      i = j == std::string_view::npos ? line.size() : j;
    }
    if (f.size() < 8 || port_of(f[1]) != client_port || port_of(f[2]) != server_port)
      continue;
    unsigned long uid = 0;
    auto r = std::from_chars(f[7].data(), f[7].data() + f[7].size(), uid);
    if (r.ec == std::errc{})
      return static_cast<uid_t>(uid);
  }
  return std::nullopt;
}

std::optional<uid_t> local_peer_uid(uint16_t client_port, uint16_t server_port) {
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"})
    if (auto uid = socket_owner_in(read_file(path).value_or(""), client_port, server_port))
      return uid;
  return std::nullopt;
}

} // namespace actorserve
