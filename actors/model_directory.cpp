#include "actors/model_directory.hpp"

namespace actorserve {

model_directory::model_directory(const deployment_config& cfg) {
  for (auto& m : cfg.models) {
    if (m.is_pipeline())
      continue; // (no batcher: the gateway runs it through its steps' models)
    entry e;
    e.status.model = m.name;
    models_.emplace(m.name, std::move(e));
  }
}

std::optional<model_directory::entry> model_directory::find(const std::string& model) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = models_.find(model);
  if (it == models_.end())
    return std::nullopt;
  return it->second;
}

void model_directory::set_batcher(const std::string& model, batcher_actor b) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto it = models_.find(model); it != models_.end())
    it->second.batcher = std::move(b);
}

void model_directory::clear_batcher(const std::string& model, const caf::actor_addr& who) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = models_.find(model);
  if (it == models_.end() || !it->second.batcher || it->second.batcher.address() != who)
    return;
  it->second.batcher = nullptr;
  it->second.status.ready_workers = 0;
  it->second.status.starting_workers = 0;
}

bool model_directory::set_status(model_status s) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = models_.find(s.model);
  if (it == models_.end())
    return false;
  bool was = it->second.status.serving();
  it->second.status = std::move(s);
  return was != (it->second.status.serving());
}

void model_directory::set_cooldown(const std::string& model, std::optional<cooldown> c) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto it = models_.find(model); it != models_.end())
    it->second.cooling_down = std::move(c);
}

void model_directory::set_unloaded(const std::string& model, bool unloaded) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto it = models_.find(model); it != models_.end())
    it->second.unloaded = unloaded;
}

bool model_directory::all_ready() const {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& kv : models_)
    if (!kv.second.unloaded && !kv.second.status.serving())
      return false;
  return true;
}

} // namespace actorserve
