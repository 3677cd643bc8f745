// actors/model_directory.hpp — which batcher serves each model now, and its readiness. Batchers
// write it when they start, report and stop; the gateway reads it for every request. It lives
// outside the actors, so a restarted gateway or batcher finds (and leaves) it current.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "actors/interfaces.hpp"
#include "runtime/config.hpp"

namespace actorserve {

class model_directory {
public:
  explicit model_directory(const deployment_config& cfg);

  /// A model its supervisors gave up, waiting out its crash-loop back-off before it is started
  /// again.
  struct cooldown {
    std::string reason;                          // why it went down
    std::chrono::steady_clock::time_point retry_at; // when it is started again
    uint32_t in_a_row = 0;                       // give-ups in a row
  };

  struct entry {
    batcher_actor batcher; // null while the model has no running batcher
    model_status status;
    bool unloaded = false; // unloaded on request (POST .../unload): refused until loaded again
    std::optional<cooldown> cooling_down;
  };

  /// The model's entry; nullopt for a model the deployment does not have.
  std::optional<entry> find(const std::string& model) const;

  void set_batcher(const std::string& model, batcher_actor b);
  /// Clears the model's batcher if it is still `who` (a newer one may have registered already);
  /// the model then has no ready worker.
  void clear_batcher(const std::string& model, const caf::actor_addr& who);
  /// Stores a batcher's report; true when the model's readiness changed.
  bool set_status(model_status s);
  /// Records the model's crash-loop back-off, or its end (nullopt) when it starts again.
  void set_cooldown(const std::string& model, std::optional<cooldown> c);
  /// Marks the model unloaded (its requests are refused) or loaded again.
  void set_unloaded(const std::string& model, bool unloaded);
  /// True when every model that is not unloaded has a ready worker.
  bool all_ready() const;
  /// Request ids, unique across gateway restarts (batchers key their requests by them).
  request_id next_request_id() { return next_id_.fetch_add(1, std::memory_order_relaxed); }

private:
  mutable std::mutex mtx_;
  std::unordered_map<std::string, entry> models_;
  std::atomic<request_id> next_id_{1};
};

} // namespace actorserve
