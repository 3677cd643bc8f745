// The actorserve executable: `serve` runs a deployment (app/serve), `check-config` validates one,
// `worker` is the child side of process isolation.
#include <csignal>
#include <iostream>
#include <string>

#include "actors/worker_process.hpp"
#include "app/command_line.hpp"
#include "app/serve.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/model_backend.hpp"

using namespace actorserve;

namespace {

int usage_failure(const char* command, const usage_error& e) {
  std::cerr << command << ": " << e.message << "\n" << usage;
  return 2;
}

int worker(int argc, char** argv) {
  auto parsed = parse_worker(argc, argv);
  if (auto* e = std::get_if<usage_error>(&parsed))
    return usage_failure("actorserve worker", *e);
  auto& w = std::get<worker_options>(parsed);
  std::signal(SIGPIPE, SIG_IGN);
  return run_worker_process(w.config, w.model, w.device, w.instance, w.port, w.parent, w.shm_fd,
                            w.shm_bytes);
}

int check_config(const std::string& path) {
  auto cfg = load_deployment_here(path);
  if (!cfg) {
    std::cerr << path << ": invalid deployment:\n" << error_message(cfg.error()) << "\n";
    return 1;
  }
  std::cout << path << ": ok (" << cfg->models.size() << " model"
            << (cfg->models.size() == 1 ? "" : "s") << ")\n";
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "serve") {
    auto parsed = parse_serve(argc, argv);
    if (auto* e = std::get_if<usage_error>(&parsed))
      return usage_failure("actorserve", *e);
    return serve(std::get<serve_options>(parsed));
  }
  if (cmd == "worker")
    return worker(argc, argv);
  if (cmd == "check-config")
    return argc == 3 ? check_config(argv[2])
                     : usage_failure("actorserve check-config", {"needs exactly one FILE"});
  if (cmd == "backends") {
    for (auto& n : backend_registry::global().names())
      std::cout << n << "\n";
    return 0;
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << usage;
    return 0;
  }
  if (cmd == "--version") {
    std::cout << "actorserve " ACTORSERVE_VERSION "\n";
    return 0;
  }
  std::cerr << "actorserve: unknown command '" << cmd << "'\n" << usage;
  return 2;
}
