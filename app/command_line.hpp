// app/command_line.hpp — the executable's command line: its usage text and the options of
// `serve` and `worker`, parsed without side effects (a bad one is an error naming it, exit 2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace actorserve {

extern const char* const usage;

struct serve_options {
  std::string config_path;
  std::string address;              // overrides server.http.address where set
  std::optional<uint16_t> port;      // overrides server.http.port
  std::optional<uint16_t> grpc_port; // turns server.grpc on, on this port
};

struct worker_options {
  std::string config, model, device = "cpu";
  uint32_t instance = 0;
  uint16_t port = 0;
  long parent = 0;
  int shm_fd = -1;
  std::size_t shm_bytes = 0;
};

/// What is wrong with a command line: printed, then the process exits with status 2.
struct usage_error {
  std::string message;
};

/// `argv[2..]` of `actorserve serve`.
std::variant<serve_options, usage_error> parse_serve(int argc, char** argv);

/// `argv[2..]` of `actorserve worker`.
std::variant<worker_options, usage_error> parse_worker(int argc, char** argv);

} // namespace actorserve
