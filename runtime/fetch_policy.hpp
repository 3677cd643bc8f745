// What the fetch stage may fetch and when it tries again: plain logic, tested alone. The
// allow-list holds host names ("images.example.com", "*.example.com") and address ranges
// ("10.0.0.0/8", "::1/128"). A URL is fetched when its host is a listed name or the address it
// resolves to is in a listed range; nothing is fetched while the list is empty. Link-local and
// cloud metadata addresses (169.254.0.0/16, fe80::/10, ...) are refused even for listed names,
// unless a listed range names them at least as narrowly as they are defined (a 0.0.0.0/0 entry
// does not open the metadata service). Checked again at every redirect and at connect time on
// the resolved address, so DNS cannot point a listed name somewhere else unnoticed.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace actorserve {

/// An IPv4 or IPv6 address range (IPv4 kept as IPv4-mapped IPv6).
struct ip_range {
  std::array<uint8_t, 16> address{};
  int prefix = 0; // bits, 0..128 (IPv4 ranges: 96 + their prefix)

  bool contains(const std::array<uint8_t, 16>& a) const;
};

/// "10.0.0.0/8", "::1", "192.168.1.7" (a single address); nullopt when not one.
std::optional<ip_range> parse_ip_range(std::string_view text);

/// An address as IPv6 (IPv4 mapped), from text or a socket address; nullopt for other families.
std::optional<std::array<uint8_t, 16>> parse_ip(std::string_view text);
std::optional<std::array<uint8_t, 16>> ip_of(const sockaddr* addr);

class fetch_allow_list {
public:
  /// Entries as the deployment lists them; `errors` gets one line per entry that is neither a
  /// host name, a "*.suffix" pattern nor an address range.
  fetch_allow_list(const std::vector<std::string>& entries, std::vector<std::string>& errors);

  bool empty() const { return names_.empty() && ranges_.empty(); }

  /// Whether `host` (lower case, without brackets) is a listed name (or matches a "*." pattern),
  /// or is an address literal in a listed range.
  bool host_listed(std::string_view host) const;

  /// Whether a connection to `address` may be made for a URL whose host `host_was_listed`;
  /// nullopt if so, else why not.
  std::optional<std::string> refuse_address(const std::array<uint8_t, 16>& address,
                                            bool host_was_listed) const;

private:
  std::vector<std::string> names_;    // exact names
  std::vector<std::string> suffixes_; // ".example.com" for "*.example.com"
  std::vector<ip_range> ranges_;
};

/// Text of an address for messages ("10.1.2.3", "::1").
std::string ip_text(const std::array<uint8_t, 16>& address);

/// Whether a failed attempt may be tried again: an HTTP status (0: no answer) of 408, 429, 500,
/// 502, 503 or 504, or a connection that failed or timed out; not 4xx answers, nor what the
/// allow-list or the size limit refused.
bool retryable_status(long http_status);

/// The wait before attempt `attempt` (1 = the first retry): base x 2^(attempt-1), capped at
/// 2 s, with "full jitter" from `unit_random` in [0, 1) so that many items do not retry at once.
int64_t retry_backoff_ns(uint32_t attempt, int64_t base_ns, double unit_random);

} // namespace actorserve
