#include "runtime/log.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <spdlog/sinks/stdout_color_sinks.h>

#include "runtime/json_text.hpp"

namespace actorserve::logging {

namespace {

std::atomic<bool> json_format{false};

std::string now_iso8601() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03lldZ", static_cast<long long>(ms));
  return buf;
}

/// `s` with its control characters written as escapes (nothing copied where there are none).
std::string escape_controls(std::string s) {
  auto is_control = [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  };
  if (std::none_of(s.begin(), s.end(), is_control))
    return s;
  std::string out;
  out.reserve(s.size() + 16);
  for (char c : s) {
    if (!is_control(c)) {
      out += c;
      continue;
    }
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
        out += hex;
      }
    }
  }
  return out;
}

} // namespace

void setup(const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_color_mt("actorserve");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  json_format = format == "json";
  // JSON lines carry their own time and level; text lines get them from spdlog's pattern.
  spdlog::set_pattern(json_format ? "%v" : "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

std::string json_line(std::string_view time, std::string_view level, const fields& f,
                      std::string_view message) {
  std::string s = "{\"time\":" + json_quote(time) + ",\"level\":" + json_quote(level)
                  + ",\"component\":" + json_quote(f.component);
  if (!f.model.empty())
    s += ",\"model\":" + json_quote(f.model);
  if (!f.worker.empty())
    s += ",\"worker\":" + json_quote(f.worker);
  if (f.request_id != 0)
    s += ",\"request_id\":" + std::to_string(f.request_id);
  if (!f.trace_id.empty())
    s += ",\"trace_id\":" + json_quote(f.trace_id);
  s += ",\"message\":" + json_quote(message) + "}";
  return s;
}

std::string text_line(const fields& f, std::string_view message) {
  std::string line(f.component);
  if (!f.model.empty())
    line += " " + std::string(f.model);
  line += ": ";
  line += message;
  if (f.request_id != 0 || !f.trace_id.empty()) {
    line += " (";
    if (f.request_id != 0)
      line += "request " + std::to_string(f.request_id) + (f.trace_id.empty() ? "" : ", ");
    if (!f.trace_id.empty())
      line += "trace " + std::string(f.trace_id);
    line += ")";
  }
  return escape_controls(std::move(line));
}

void write(spdlog::level::level_enum level, const fields& f, std::string_view message) {
  if (json_format) {
    auto lv = spdlog::level::to_string_view(level);
    spdlog::log(level, "{}", json_line(now_iso8601(), std::string_view(lv.data(), lv.size()), f,
                                       message));
    return;
  }
  spdlog::log(level, "{}", text_line(f, message));
}

} // namespace actorserve::logging
