#include "net/model_control.hpp"

#include <atomic>
#include <chrono>
#include <mutex>

#include <caf/event_based_actor.hpp>

#include "net/actor_bridge.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace actorserve {

namespace {

using clock = std::chrono::steady_clock;

/// One unload or load, run by an actor of its own: each step asks the gateway; waiting (for the
/// model's requests to drain, for it to be ready) polls on the actor's timer.
struct procedure {
  std::shared_ptr<inference> infer;
  std::string model;
  bool load;
  model_control::done_fn done;
  std::shared_ptr<const std::atomic<bool>> stopping; // model_control::stop() was called
  clock::time_point until;       // of the wait in progress
  std::function<void()> on_tick; // what the next tick runs (it holds the procedure)
};

using self_ptr = caf::event_based_actor*;
using proc_ptr = std::shared_ptr<procedure>;

void finish(self_ptr self, const proc_ptr& p, caf::expected<std::string> outcome) {
  auto done = std::move(p->done);
  p->on_tick = nullptr; // (a tick that will not come: it held the procedure)
  self->quit();
  done(std::move(outcome));
}

/// The gateway for the next step, or nothing after finishing with "not ready": the node is
/// stopping, or the gateway is between its crash and restart.
gateway_actor gateway_of(self_ptr self, const proc_ptr& p) {
  if (p->stopping->load()) {
    finish(self, p, make_error(errc::not_ready, "the server is shutting down"));
    return {};
  }
  auto gw = p->infer->gateway()->get();
  if (!gw)
    finish(self, p, make_error(errc::not_ready, "the server is restarting its gateway; try again"));
  return gw;
}

void poll_later(self_ptr self, const proc_ptr& p, std::chrono::milliseconds after,
                std::function<void()> step) {
  p->on_tick = std::move(step);
  self->delayed_send(self, after, tick_atom::value);
}

/// Done once the model is ready, or "not ready" at `until`.
void await_ready(self_ptr self, proc_ptr p) {
  auto gw = gateway_of(self, p);
  if (!gw)
    return;
  self->request(gw, std::chrono::seconds(5), ready_atom::value, p->model, std::string())
    .then(
      [self, p](bool ready) {
        if (ready)
          return finish(self, p, std::string("READY"));
        if (clock::now() >= p->until)
          return finish(
            self, p,
            make_error(errc::not_ready,
                       "model '" + p->model + "' was started but is not ready after "
                         + std::to_string(p->infer->config()->server.http.model_load_wait_ms)
                         + " ms (http.model_load_wait_ms); its log says why (it may still be "
                           "warming up)"));
        poll_later(self, p, std::chrono::milliseconds(50), [self, p] { await_ready(self, p); });
      },
      [self, p](caf::error&) { // (asked again until `until`, as when not ready)
        poll_later(self, p, std::chrono::milliseconds(50), [self, p] { await_ready(self, p); });
      });
}

void start(self_ptr self, proc_ptr p) {
  auto gw = gateway_of(self, p);
  if (!gw)
    return;
  self->request(gw, std::chrono::seconds(35), restart_child_atom::value, p->model)
    .then(
      [self, p](bool) {
        logging::info({"repository", p->model}, "model '{}' loaded on request; warming up",
                      p->model);
        p->until = clock::now()
                   + std::chrono::milliseconds(p->infer->config()->server.http.model_load_wait_ms);
        await_ready(self, p);
      },
      [self, p](caf::error& e) { finish(self, p, std::move(e)); });
}

/// Stops the model's subtree once none of its requests is in flight, or at `until`.
void stop_when_drained(self_ptr self, proc_ptr p) {
  auto* mm = p->infer->stats()->model(p->model);
  if (mm && mm->in_flight.load(std::memory_order_relaxed) > 0 && clock::now() < p->until
      && !p->stopping->load())
    return poll_later(self, p, std::chrono::milliseconds(10),
                      [self, p] { stop_when_drained(self, p); });
  auto gw = gateway_of(self, p);
  if (!gw)
    return;
  auto* m = p->infer->config()->find_model(p->model);
  auto stop_time = std::chrono::milliseconds(m ? m->restart.shutdown_ms : 5000) * 4
                   + std::chrono::seconds(5);
  self->request(gw, stop_time, terminate_child_atom::value, p->model)
    .then(
      [self, p](bool) {
        p->infer->clear_cache(p->model); // (the stopped model's answers)
        logging::info({"repository", p->model}, "model '{}' unloaded on request", p->model);
        if (p->load)
          return start(self, p);
        finish(self, p, std::string("UNLOADED"));
      },
      [self, p](caf::error& e) {
        p->infer->clear_cache(p->model);
        finish(self, p, std::move(e));
      });
}

/// Unloads the model: its new requests are refused, those it holds are answered, then its
/// subtree is stopped (and started again for a load).
void unload_then_stop(self_ptr self, proc_ptr p) {
  auto gw = gateway_of(self, p);
  if (!gw)
    return;
  self->request(gw, std::chrono::seconds(5), unload_atom::value, p->model)
    .then(
      [self, p](bool) {
        p->until = clock::now()
                   + std::chrono::milliseconds(p->infer->config()->server.http.drain_timeout_ms);
        stop_when_drained(self, p);
      },
      [self, p](caf::error& e) { finish(self, p, std::move(e)); });
}

/// A load: a model that serves is reloaded in place, one worker at a time, so that it never
/// stops serving; one that does not is started (after its subtree is stopped, if it runs).
void reload_or_restart(self_ptr self, proc_ptr p) {
  auto gw = gateway_of(self, p);
  if (!gw)
    return;
  auto wait = std::chrono::milliseconds(p->infer->config()->server.http.model_load_wait_ms);
  self->request(gw, wait, reload_atom::value, p->model)
    .then(
      [self, p](bool reloaded) {
        if (!reloaded)
          return unload_then_stop(self, p);
        p->infer->clear_cache(p->model); // (answers of the model as it was)
        logging::info({"repository", p->model}, "model '{}' reloaded on request", p->model);
        finish(self, p, std::string("READY"));
      },
      [self, p](caf::error& e) {
        p->infer->clear_cache(p->model);
        if (error_code(e) == errc::deadline_exceeded)
          e = make_error(errc::not_ready,
                         "model '" + p->model + "' is still being reloaded after "
                           + std::to_string(p->infer->config()->server.http.model_load_wait_ms)
                           + " ms (http.model_load_wait_ms); its workers go on, one at a time, "
                             "and it serves meanwhile");
        finish(self, p, std::move(e));
      });
}

caf::behavior run(self_ptr self, proc_ptr p) {
  if (auto gw = gateway_of(self, p)) {
    // A gateway that stops (the node shutting down, or its crash) ends the procedure: nothing
    // is left waiting for it.
    self->monitor(gw);
    self->set_down_handler([self, p](caf::down_msg&) {
      auto doing = p->load ? "loaded" : "unloaded";
      finish(self, p,
             make_error(errc::not_ready, "the gateway stopped while model '" + p->model
                                           + "' was being " + doing
                                           + "; its state is in the repository index"));
    });
    if (p->load)
      reload_or_restart(self, p);
    else
      unload_then_stop(self, p);
  }
  return {[p](tick_atom) {
    auto step = std::move(p->on_tick);
    step();
  }};
}

} // namespace

model_control::model_control(std::shared_ptr<inference> infer)
  : infer_(std::move(infer)), stopping_(std::make_shared<std::atomic<bool>>(false)) {
}

void model_control::stop() {
  stopping_->store(true);
}

void model_control::unload(const std::string& model, done_fn done) const {
  control(model, false, std::move(done));
}

void model_control::load(const std::string& model, done_fn done) const {
  control(model, true, std::move(done));
}

void model_control::control(const std::string& model, bool load, done_fn done) const {
  auto p = std::make_shared<procedure>();
  p->infer = infer_;
  p->model = model;
  p->load = load;
  p->done = std::move(done);
  p->stopping = stopping_;
  infer_->system().spawn(run, std::move(p));
}

void model_control::index(bool only_ready,
                          std::function<void(std::vector<model_state>)> done) const {
  struct gathered {
    std::mutex lock;
    std::vector<caf::expected<bool>> states; // by the models' place in the deployment
    std::size_t left;
  };
  auto cfg = infer_->config();
  auto& models = cfg->models;
  if (models.empty())
    return done({});
  auto all = std::make_shared<gathered>();
  all->states.resize(models.size(), false);
  all->left = models.size();
  auto finished = std::make_shared<std::function<void(std::vector<model_state>)>>(std::move(done));
  for (std::size_t i = 0; i < models.size(); ++i) {
    auto answered = [cfg, all, finished, only_ready, i](caf::expected<bool> ready) {
      std::vector<model_state> out;
      {
        std::lock_guard<std::mutex> guard(all->lock);
        all->states[i] = std::move(ready);
        if (--all->left > 0)
          return;
        for (std::size_t k = 0; k < all->states.size(); ++k) {
          auto& state = all->states[k];
          bool is_ready = state && *state;
          if (only_ready && !is_ready)
            continue;
          auto& m = cfg->models[k];
          model_state s{m.name, m.version, is_ready ? "READY" : "UNAVAILABLE", {}};
          if (!state)
            s.reason = error_message(state.error());
          else if (!is_ready)
            s.reason = m.is_pipeline() ? "a model of its pipeline is not ready"
                                       : "no worker of the model is ready";
          out.push_back(std::move(s));
        }
      }
      (*finished)(std::move(out));
    };
    ask<bool>(infer_->system(), infer_->gateway()->get(), std::chrono::seconds(5), answered,
              ready_atom::value, models[i].name, std::string());
  }
}

} // namespace actorserve
