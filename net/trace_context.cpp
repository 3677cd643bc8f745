#include "net/trace_context.hpp"

#include "runtime/tracing.hpp"

namespace actorserve {

namespace {

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

bool all_zero(std::string_view s) {
  return s.find_first_not_of('0') == std::string_view::npos;
}

} // namespace

std::string trace_context::header() const {
  std::string out;
  out.reserve(5 + trace_id.size() + span_id.size() + flags.size());
  out.append("00-").append(trace_id).append(1, '-').append(span_id).append(1, '-').append(flags);
  return out;
}

std::optional<trace_context> parse_traceparent(std::string_view v) {
  // version(2) - trace-id(32) - parent-id(16) - flags(2); future versions may append fields.
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
    return std::nullopt;
  auto version = v.substr(0, 2);
  auto trace = v.substr(3, 32);
  auto parent = v.substr(36, 16);
  auto flags = v.substr(53, 2);
  if (!is_hex(version) || version == "ff" || !is_hex(trace) || !is_hex(parent) || !is_hex(flags))
    return std::nullopt;
  if (all_zero(trace) || all_zero(parent))
    return std::nullopt;
  if (version == "00" && v.size() != 55)
    return std::nullopt;
  if (v.size() > 55 && v[55] != '-')
    return std::nullopt;
  trace_context t;
  t.trace_id = std::string(trace);
  t.parent_id = std::string(parent);
  t.flags = std::string(flags);
  return t;
}

trace_context continue_or_start_trace(std::string_view header) {
  auto t = parse_traceparent(header);
  if (!t) {
    t.emplace();
    t->trace_id = tracing::new_trace_id();
  }
  t->span_id = tracing::new_span_id();
  return std::move(*t);
}

} // namespace actorserve
