#include "net/inference.hpp"

#include "actors/request_routing.hpp"
#include "runtime/tracing.hpp"

namespace actorserve {

inference::inference(caf::actor_system& sys, std::shared_ptr<handle_cell<gateway_actor>> gateway,
                     std::shared_ptr<model_directory> directory,
                     std::shared_ptr<const deployment_config> cfg, std::shared_ptr<metrics> stats)
  : sys_(sys), gateway_(std::move(gateway)), directory_(std::move(directory)),
    cfg_(std::move(cfg)), stats_(std::move(stats)), asker_(sys) {
  for (auto& model : cfg_->models)
    if (model.response_cache_bytes > 0)
      caches_[model.name] = std::make_unique<response_cache>(model.response_cache_bytes);
}

response_cache* inference::cache(const std::string& model) const {
  auto it = caches_.find(model);
  return it == caches_.end() ? nullptr : it->second.get();
}

inference::options_ptr inference::take_options(kserve::decoded_request& decoded,
                                               const std::string& model) const {
  auto options = std::make_shared<kserve::decoded_request>();
  options->binary_output_default = decoded.binary_output_default;
  options->binary_outputs = std::move(decoded.binary_outputs);
  options->json_outputs = std::move(decoded.json_outputs);
  options->shm_outputs = std::move(decoded.shm_outputs);
  options->timing = decoded.timing;
  options->classifications = std::move(decoded.classifications);
  auto* m = cfg_->find_model(model);
  for (auto& c : options->classifications) {
    auto* spec = m ? m->find_output(c.output) : nullptr;
    c.labels = spec && !spec->labels.empty() ? &spec->labels : nullptr;
    c.batched = !m || m->max_batch_size > 0;
  }
  return options;
}

std::chrono::microseconds inference::timeout_of(const infer_request& req) const {
  return timeout_of(req, cfg_->find_model(req.model));
}

caf::expected<const model_config*> inference::addressed(const std::string& model,
                                                        const std::string& version) const {
  auto* m = cfg_->find_model(model);
  if (!m)
    return make_error(errc::model_not_found, "unknown model '" + model + "'");
  if (!version.empty() && version != m->version)
    return make_error(errc::model_not_found,
                      "model '" + model + "' has no version '" + version + "'");
  return m;
}

std::chrono::microseconds inference::timeout_of(const infer_request& req, const model_config* m) {
  return std::chrono::microseconds(req.timeout_us > 0
                                     ? req.timeout_us
                                     : static_cast<int64_t>(m ? m->default_timeout_us
                                                              : 10'000'000));
}

void inference::submit(infer_request req, const options_ptr& options, done_fn done) {
  auto* m = cfg_->find_model(req.model);
  auto* mm = stats_->model(req.model);
  // The model's response cache: an equal earlier request's answer, without the model.
  std::shared_ptr<const response_cache::key> cache_key;
  int64_t lookup_ns = 0;
  auto* cache = this->cache(req.model);
  if (cache && m && (req.version.empty() || req.version == m->version) && req.fault.empty()) {
    auto t0 = std::chrono::steady_clock::now();
    auto key = response_cache::make_key(req.inputs, req.outputs);
    auto hit = cache->find(key);
    lookup_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::steady_clock::now() - t0).count();
    if (hit) {
      if (mm)
        mm->cache_hit.add(lookup_ns);
      infer_response res;
      res.model = std::move(req.model);
      res.version = m->version;
      res.client_id = std::move(req.client_id);
      res.outputs = std::move(*hit);
      options->cache_hit = true;
      return done(std::move(res));
    }
    cache_key = std::make_shared<const response_cache::key>(std::move(key));
  }
  auto answered = [mm, cache, cache_key, lookup_ns,
                   done = std::move(done)](caf::expected<infer_response> res) {
    if (cache_key) {
      auto t0 = std::chrono::steady_clock::now();
      if (res)
        cache->insert(*cache_key, res->outputs);
      if (mm) {
        mm->cache_miss.add(lookup_ns
                           + std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - t0).count());
        mm->cache_bytes.store(cache->bytes(), std::memory_order_relaxed);
      }
    }
    done(std::move(res));
  };
  auto now = std::chrono::steady_clock::now();
  if (m && m->is_pipeline()) // (the gateway runs its steps)
    return send(caf::actor_cast<caf::strong_actor_ptr>(gateway_->get()), std::move(req),
                now + timeout_of(req, m) + bridge_grace, mm, std::move(answered));
  auto route = route_inference(*cfg_, m, *directory_, req,
                               std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 now.time_since_epoch()).count());
  if (req.sampled) // (the gateway's checks, run here: model, version, readiness, inputs, ...)
    tracing::record_child(req, "route " + req.model, now, std::chrono::steady_clock::now(),
                          {{"actorserve.model", req.model},
                           {"actorserve.routed", static_cast<bool>(route)}});
  if (!route)
    return answered(std::move(route.error()));
  auto give_up = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(req.deadline_ns))
                 + bridge_grace;
  send(caf::actor_cast<caf::strong_actor_ptr>(route->batcher), std::move(req), give_up, mm,
       std::move(answered));
}

void inference::send(const caf::strong_actor_ptr& dest, infer_request req,
                     infer_asker::clock::time_point give_up, model_metrics* mm, done_fn done) {
  if (mm)
    mm->in_flight.fetch_add(1, std::memory_order_relaxed);
  asker_.ask(dest, std::move(req), give_up, [mm, done = std::move(done)](auto res) {
    if (mm)
      mm->in_flight.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(res));
  });
}

void inference::account(model_metrics* mm, errc outcome,
                        std::chrono::steady_clock::time_point received) {
  if (!mm)
    return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - received).count();
  mm->count_request(outcome);
  mm->request_seconds.observe(static_cast<double>(ns) * 1e-9);
  (outcome == errc::none ? mm->success : mm->fail).add(ns);
}

void inference::clear_cache(const std::string& model) {
  if (auto* c = cache(model)) {
    c->clear();
    if (auto* mm = stats_->model(model))
      mm->cache_bytes.store(0, std::memory_order_relaxed);
  }
}

std::vector<std::string_view> server_extensions(bool shared_memory) {
  std::vector<std::string_view> names{"binary_tensor_data", "schedule_policy",
                                      "model_configuration", "statistics",
                                      "model_repository", "classification"};
  if (shared_memory)
    names.push_back("system_shared_memory");
  return names;
}

} // namespace actorserve
