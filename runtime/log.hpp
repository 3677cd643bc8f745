// Structured logging over spdlog: one line per event with its component and, where known, model,
// request id and trace id; human-readable text or JSON lines (server.log_format).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

namespace actorserve::logging {

struct fields {
  std::string_view component;     // "batcher", "worker", "http", ...
  std::string_view model = {};
  uint64_t request_id = 0;        // 0 = none
  std::string_view trace_id = {};
  std::string_view worker = {};
};

/// Sets up the process-wide logger on stderr: `level` as in the config, `format` "text" or "json".
void setup(const std::string& level, const std::string& format);

/// Renders one event (without time and level for text, complete for JSON) and logs it.
void write(spdlog::level::level_enum level, const fields& f, std::string_view message);

/// The line `write` produces for text output (spdlog adds time and level): control characters
/// are escaped (\n, \r, \t, \xNN), so a name or value from outside (a region's, a worker's, a
/// Redis field's) cannot start a forged line.
std::string text_line(const fields& f, std::string_view message);

/// The line `write` produces for JSON output, for tests: time and level included.
std::string json_line(std::string_view time, std::string_view level, const fields& f,
                      std::string_view message);

template <class... Ts>
void log(spdlog::level::level_enum level, const fields& f, fmt::format_string<Ts...> fmt,
         Ts&&... xs) {
  if (spdlog::should_log(level))
    write(level, f, fmt::format(fmt, std::forward<Ts>(xs)...));
}

template <class... Ts>
void debug(const fields& f, fmt::format_string<Ts...> fmt, Ts&&... xs) {
  log(spdlog::level::debug, f, fmt, std::forward<Ts>(xs)...);
}
template <class... Ts>
void info(const fields& f, fmt::format_string<Ts...> fmt, Ts&&... xs) {
  log(spdlog::level::info, f, fmt, std::forward<Ts>(xs)...);
}
template <class... Ts>
void warn(const fields& f, fmt::format_string<Ts...> fmt, Ts&&... xs) {
  log(spdlog::level::warn, f, fmt, std::forward<Ts>(xs)...);
}
template <class... Ts>
void error(const fields& f, fmt::format_string<Ts...> fmt, Ts&&... xs) {
  log(spdlog::level::err, f, fmt, std::forward<Ts>(xs)...);
}
template <class... Ts>
void critical(const fields& f, fmt::format_string<Ts...> fmt, Ts&&... xs) {
  log(spdlog::level::critical, f, fmt, std::forward<Ts>(xs)...);
}

} // namespace actorserve::logging
