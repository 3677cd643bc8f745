#include "runtime/fetch_policy.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace actorserve {
namespace {

std::array<uint8_t, 16> mapped_v4(const uint8_t* v4) {
  std::array<uint8_t, 16> a{};
  a[10] = a[11] = 0xff;
  std::memcpy(a.data() + 12, v4, 4);
  return a;
}

bool is_v4(const std::array<uint8_t, 16>& a) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.data(), prefix, 12) == 0;
}

/// Where no connection goes unless a listed range names it at least this narrowly: link-local
/// (where clouds put their metadata services), the other metadata addresses, and "this host".
const std::vector<ip_range>& guarded_ranges() {
  static const std::vector<ip_range> ranges = [] {
    std::vector<ip_range> r;
    for (auto text : {"169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
                      "0.0.0.0/8", "::/128"})
      r.push_back(*parse_ip_range(text));
    return r;
  }();
  return ranges;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 253)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

} // namespace

bool ip_range::contains(const std::array<uint8_t, 16>& a) const {
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(a.data(), address.data(), static_cast<std::size_t>(full)) != 0)
    return false;
  if (rest == 0)
    return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[static_cast<std::size_t>(full)] & mask) == (address[static_cast<std::size_t>(full)] & mask);
}

std::optional<std::array<uint8_t, 16>> parse_ip(std::string_view text) {
  std::string s(text);
  uint8_t buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1)
    return mapped_v4(buf);
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    std::array<uint8_t, 16> a;
    std::memcpy(a.data(), buf, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<std::array<uint8_t, 16>> ip_of(const sockaddr* addr) {
  if (addr->sa_family == AF_INET)
    return mapped_v4(reinterpret_cast<const uint8_t*>(
      &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr));
  if (addr->sa_family == AF_INET6) {
    std::array<uint8_t, 16> a;
    std::memcpy(a.data(), &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<ip_range> parse_ip_range(std::string_view text) {
  auto slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip)
    return std::nullopt;
  int max = is_v4(*ip) && text.substr(0, slash).find(':') == std::string_view::npos ? 32 : 128;
  int bits = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3
        || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    bits = std::stoi(std::string(digits));
    if (bits > max)
      return std::nullopt;
  }
  ip_range r;
  r.address = *ip;
  r.prefix = max == 32 ? 96 + bits : bits;
  return r;
}

std::string ip_text(const std::array<uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (is_v4(a))
    inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

fetch_allow_list::fetch_allow_list(const std::vector<std::string>& entries,
                                   std::vector<std::string>& errors) {
  for (auto& e : entries) {
    if (auto r = parse_ip_range(e))
      ranges_.push_back(*r);
    else if (e.rfind("*.", 0) == 0 && valid_name(e.substr(2)))
      suffixes_.push_back(lower(e.substr(1)));
    else if (valid_name(e) && e.find('/') == std::string::npos)
      names_.push_back(lower(e));
    else
      errors.push_back("\"" + e + "\" is neither a host name, a \"*.domain\" pattern nor an "
                       "address range such as \"10.0.0.0/8\"");
  }
}

bool fetch_allow_list::host_listed(std::string_view host) const {
  if (auto ip = parse_ip(host))
    return std::any_of(ranges_.begin(), ranges_.end(), [&](auto& r) { return r.contains(*ip); });
  auto h = lower(host);
  if (std::find(names_.begin(), names_.end(), h) != names_.end())
    return true;
  return std::any_of(suffixes_.begin(), suffixes_.end(), [&](const std::string& s) {
    return h.size() > s.size() && h.compare(h.size() - s.size(), s.size(), s) == 0;
  });
}

std::optional<std::string> fetch_allow_list::refuse_address(const std::array<uint8_t, 16>& a,
                                                            bool host_was_listed) const {
  for (auto& g : guarded_ranges())
    if (g.contains(a)) {
      bool named = std::any_of(ranges_.begin(), ranges_.end(), [&](const ip_range& r) {
        return r.contains(a) && r.prefix >= g.prefix;
      });
      if (!named)
        return "address " + ip_text(a) + " is link-local, a metadata service or this host's "
               "\"any\" address; list its range explicitly to allow it";
      return std::nullopt;
    }
  if (host_was_listed
      || std::any_of(ranges_.begin(), ranges_.end(), [&](auto& r) { return r.contains(a); }))
    return std::nullopt;
  return "address " + ip_text(a) + " is in no allowed range and its host is not listed";
}

bool retryable_status(long http_status) {
  switch (http_status) {
    case 0: case 408: case 429: case 500: case 502: case 503: case 504: return true;
    default: return false;
  }
}

int64_t retry_backoff_ns(uint32_t attempt, int64_t base_ns, double unit_random) {
  constexpr int64_t cap = 2'000'000'000;
  int64_t ceiling = base_ns;
  for (uint32_t i = 1; i < attempt && ceiling < cap; ++i)
    ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  return static_cast<int64_t>(static_cast<double>(ceiling) * std::clamp(unit_random, 0.0, 1.0));
}

} // namespace actorserve
