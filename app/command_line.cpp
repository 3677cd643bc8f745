#include "app/command_line.hpp"

#include <exception>

namespace actorserve {

const char* const usage =
  "usage:\n"
  "  actorserve serve --config FILE [--address IP] [--port N] [--grpc-port N]\n"
  "      Serves the deployment over HTTP (KServe v2), and over gRPC with server.grpc or\n"
  "      --grpc-port. Port 0 picks a free port; the bound addresses are printed as\n"
  "      'actorserve: listening on http[s]://IP:PORT' and 'actorserve: grpc on IP:PORT'.\n"
  "      SIGINT/SIGTERM stop it.\n"
  "  actorserve check-config FILE\n"
  "      Validates a deployment file without serving; exit status 0 when valid.\n"
  "  actorserve backends\n"
  "      Lists the compiled-in model backends.\n"
  "  actorserve worker --config FILE --model M --device D --instance I --connect PORT\n"
  "                    [--parent PID] [--shm-fd FD --shm-bytes N]\n"
  "      Internal: an isolated worker process, started by the node it connects back to.\n";

namespace {

std::optional<uint16_t> parse_port(const std::string& text) {
  int n = -1;
  try {
    std::size_t used = 0;
    n = std::stoi(text, &used);
    if (used != text.size())
      return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (n < 0 || n > 65535)
    return std::nullopt;
  return static_cast<uint16_t>(n);
}

} // namespace

std::variant<serve_options, usage_error> parse_serve(int argc, char** argv) {
  serve_options opts;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a != "--config" && a != "--address" && a != "--port" && a != "--grpc-port")
      return usage_error{"unknown argument '" + a + "'"};
    if (i + 1 >= argc)
      return usage_error{a + " needs a value"};
    std::string v = argv[++i];
    if (a == "--config") {
      opts.config_path = v;
    } else if (a == "--address") {
      opts.address = v;
    } else {
      auto port = parse_port(v);
      if (!port)
        return usage_error{a + " must be 0..65535, got '" + v + "'"};
      (a == "--port" ? opts.port : opts.grpc_port) = port;
    }
  }
  if (opts.config_path.empty())
    return usage_error{"serve needs --config FILE"};
  return opts;
}

std::variant<worker_options, usage_error> parse_worker(int argc, char** argv) {
  worker_options w;
  try {
    for (int i = 2; i + 1 < argc; i += 2) {
      std::string a = argv[i], v = argv[i + 1];
      if (a == "--config") w.config = v;
      else if (a == "--model") w.model = v;
      else if (a == "--device") w.device = v;
      else if (a == "--instance") w.instance = static_cast<uint32_t>(std::stoul(v));
      else if (a == "--connect") w.port = static_cast<uint16_t>(std::stoul(v));
      else if (a == "--parent") w.parent = std::stol(v);
      else if (a == "--shm-fd") w.shm_fd = std::stoi(v);
      else if (a == "--shm-bytes") w.shm_bytes = std::stoull(v);
      else return usage_error{"unknown option " + a};
    }
  } catch (const std::exception&) {
    return usage_error{"an option's value is not a number"};
  }
  if (w.config.empty() || w.model.empty() || w.port == 0)
    return usage_error{"--config, --model and --connect are required"};
  return w;
}

} // namespace actorserve
