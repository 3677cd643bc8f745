// Triton's model repository extension, shared by the HTTP and gRPC fronts: the repository index
// (every model's state) and unloading or loading a model while the node serves. Unload: the
// model's new requests are refused ("unloaded"), those it holds are answered (for up to
// server.http.drain_timeout_ms), then its subtree (batcher and workers) is stopped, which frees
// its memory. Load of a model that serves: its workers are reloaded one at a time (each drained,
// stopped, started again: it loads the model file anew and warms up), so the model never stops
// serving; a worker that does not come back is kept down and the load fails, the others serving
// as before. Load of a model that does not serve (unloaded, stopped): its subtree is started
// (stopped first if it runs). Either is done once the model is ready (or 503 after
// server.http.model_load_wait_ms). Its response cache is emptied either way. Thread-safe;
// answers come on CAF threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "net/inference.hpp"

namespace actorserve {

class model_control {
public:
  explicit model_control(std::shared_ptr<inference> infer);

  /// One model in the repository index: state READY or UNAVAILABLE (then with a reason).
  struct model_state {
    std::string name, version, state, reason;
  };

  /// Every model of the deployment, in its order, as the gateway sees it (only the ready ones
  /// with `only_ready`); `done` is called once.
  void index(bool only_ready, std::function<void(std::vector<model_state>)> done) const;

  /// The state a model reached: "UNLOADED" or "READY".
  using done_fn = std::function<void(caf::expected<std::string>)>;

  /// Unloads `model` (see above); `done` is called once.
  void unload(const std::string& model, done_fn done) const;

  /// Reloads `model`, or starts it (see above); `done` is called once it is ready or has failed.
  void load(const std::string& model, done_fn done) const;

  /// The node is stopping: loads and unloads in progress end at their next step, answered
  /// "shutting down" (not ready), and no model is started again.
  void stop();

  /// What a load or unload accepts besides the model's name: its parameters may hold
  /// "unload_dependents" (a boolean, ignored: no model depends on another's being loaded).
  /// The message for anything else.
  static constexpr const char* parameters_expected =
    "a model's configuration comes from the deployment file only: the only parameter a load or "
    "unload takes is unload_dependents (a boolean)";

private:
  void control(const std::string& model, bool load, done_fn done) const;

  std::shared_ptr<inference> infer_;
  std::shared_ptr<std::atomic<bool>> stopping_; // shared with the procedures, which may outlive it
};

} // namespace actorserve
