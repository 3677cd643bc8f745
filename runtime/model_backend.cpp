#include "runtime/model_backend.hpp"
#include "runtime/plugin.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace actorserve {

model_backend::~model_backend() = default;

pending_batch::~pending_batch() = default;

namespace {

/// Outputs computed synchronously by start(), handed out by wait().
class finished_batch : public pending_batch {
public:
  explicit finished_batch(std::vector<tensor> outputs) : outputs_(std::move(outputs)) {}
  std::vector<tensor> wait() override { return std::move(outputs_); }

private:
  std::vector<tensor> outputs_;
};

} // namespace

std::unique_ptr<pending_batch> model_backend::start(const std::vector<batch_input>& inputs) {
  std::vector<tensor> assembled;
  assembled.reserve(inputs.size());
  for (auto& in : inputs)
    assembled.push_back(in.concatenate());
  return std::make_unique<finished_batch>(run(assembled));
}

backend_registry& backend_registry::global() {
  static backend_registry instance;
  return instance;
}

bool backend_registry::add(const std::string& name, backend_factory factory) {
  std::lock_guard<std::mutex> guard{mtx_};
  return factories_.emplace(name, std::move(factory)).second;
}

std::unique_ptr<model_backend> backend_registry::create(const std::string& name,
                                                        const backend_context& ctx) const {
  backend_factory f;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::string known;
      for (auto& kv : factories_)
        known += (known.empty() ? "" : ", ") + kv.first;
      throw std::runtime_error("unknown backend \"" + name + "\"; compiled-in backends: "
                               + (known.empty() ? "none" : known));
    }
    f = it->second;
  }
  return f(ctx);
}

std::vector<std::string> backend_registry::names() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<std::string> out;
  for (auto& kv : factories_)
    out.push_back(kv.first);
  return out;
}

int backend_registry::cuda_devices() const {
  std::function<int()> f;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    f = cuda_counter_;
  }
  return f ? f() : 0;
}

void backend_registry::set_cuda_device_counter(std::function<int()> counter) {
  std::lock_guard<std::mutex> guard{mtx_};
  cuda_counter_ = std::move(counter);
}

backend_registrar::backend_registrar(const std::string& name, backend_factory factory) {
  backend_registry::global().add(name, std::move(factory));
}

caf::expected<deployment_config> load_deployment_here(const std::string& path) {
  if (auto err = load_plugins_of(path)) // (first: they add stages and backends it may name)
    return err;
  auto& registry = backend_registry::global();
  auto cfg = load_deployment(path, registry.names());
  if (!cfg)
    return cfg;
  if (auto err = resolve_devices(*cfg, registry.cuda_devices()))
    return err;
  share_cpu_threads(*cfg, std::max(1u, std::thread::hardware_concurrency()));
  return cfg;
}

std::string backend_parameter(const model_config& m, const std::string& key,
                              const std::string& fallback) {
  auto it = m.parameters.find(key);
  return it == m.parameters.end() ? fallback : it->second;
}

} // namespace actorserve
