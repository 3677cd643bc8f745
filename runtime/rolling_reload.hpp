// A rolling reload of a model's workers (POST .../load of a model that serves): one worker at a
// time takes no new batches, finishes its own, is stopped and started again (it reads the model
// file anew and warms up), and the next one follows once it is back. Events in, actions out; free
// of CAF and of the clock. actors/batcher_reload feeds it what happens to its workers and carries
// out what it answers (drains, supervisor requests, the answer to the load).
#pragma once

#include <deque>
#include <functional>
#include <string>

namespace actorserve {

class rolling_reload {
public:
  /// What the batcher does next.
  enum class act {
    none,       // nothing: the event was not about the worker being reloaded
    drain,      // `worker` takes no new batches; on_drained once its batches are done
    start,      // start `worker` (down since a failed reload, it has nothing to drain)
    stop_start, // stop the drained `worker` and start it again
    done,       // every worker was reloaded: the load answers true
    failed,     // `worker` did not come back (`why`): it is kept down; the load answers the error
    abandoned,  // `worker` was given up by its supervisor (`why`): the load answers the error
  };

  struct step {
    act what = act::none;
    std::string worker;
    std::string why;
  };

  /// Where a worker stands when its turn comes.
  enum class standing {
    serving, // ready: it is drained first
    held,    // kept down since a failed reload: it is only started
    gone,    // down or leaving meanwhile: skipped (its supervisor starts it with the new file)
  };
  using standing_of = std::function<standing(const std::string&)>;

  /// The workers, in the order they are reloaded.
  explicit rolling_reload(std::deque<std::string> workers) : left_(std::move(workers)) {}

  /// The worker being reloaded ("" before the first step).
  const std::string& current() const { return current_; }

  /// The next worker's turn (the first one's: call it once to begin).
  step next(const standing_of& where);

  /// `worker` finished the batches it held: the current one is stopped and started again.
  step on_drained(const std::string& worker);

  /// The supervisor started `worker` again: from now on, its going down means it failed.
  void on_started(const std::string& worker);

  /// `worker` is starting (its supervisor restarts it after it went down).
  step on_starting(const std::string& worker);

  /// `worker` is ready: the current one is back, the next one's turn.
  step on_ready(const std::string& worker, const standing_of& where);

  /// The supervisor gave `worker` up.
  step on_given_up(const std::string& worker);

  /// A request to the supervisor about `worker` (to stop it, to start it) failed.
  step on_request_failed(const std::string& worker, const std::string& why);

private:
  bool is_current(const std::string& worker) const { return !current_.empty() && worker == current_; }

  std::deque<std::string> left_;
  std::string current_;
  bool started_ = false; // the current worker was started again
  bool over_ = false;    // done, failed or abandoned: no more steps
};

} // namespace actorserve
