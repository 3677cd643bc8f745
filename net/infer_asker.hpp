// net/infer_asker.hpp — a front's thread asks an actor (a model's batcher, or the gateway) for an
// inference without an actor of its own per request. One CAF actor companion stands as the
// sender of every request; the answer comes back to it as a response message, which it hands to
// the request's callback by message id, on the answering actor's thread. So a request costs one
// mailbox enqueue there and one callback back: no bridge actor to spawn and schedule, no timeout
// registered with CAF's clock thread.
//
// Every ask ends in exactly one call of its callback: with the answer; with the error CAF returns
// when the receiver is gone (its mailbox closed); or, on the asker's own timer thread, with
// deadline_exceeded once its time limit passes unanswered (an actor lost with the request: CAF
// 0.17 sends nothing for a response promise that is destroyed), or when the asker stops.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/actor_companion.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/mailbox_element.hpp>

#include "runtime/messages.hpp"

namespace actorserve {

class infer_asker {
public:
  using clock = std::chrono::steady_clock;
  using done_fn = std::function<void(caf::expected<infer_response>)>;

  explicit infer_asker(caf::actor_system& sys);
  /// Answers what is still pending ("the server is stopping") and stops the companion.
  ~infer_asker();
  infer_asker(const infer_asker&) = delete;
  infer_asker& operator=(const infer_asker&) = delete;

  /// Sends `(infer_atom, req)` to `dest` as a request. `done` runs once: with the answer, or
  /// with deadline_exceeded (`what` says whose answer did not come) if none came by `give_up`.
  /// A null `dest` is answered at once with not_ready.
  void ask(const caf::strong_actor_ptr& dest, infer_request req, clock::time_point give_up,
           done_fn done);

  /// Requests asked and not yet answered.
  std::size_t pending() const;

private:
  struct waiting {
    done_fn done;
    clock::time_point give_up;
    std::string model;
  };

  caf::actor_companion* companion() const;
  void on_message(caf::mailbox_element_ptr m);
  /// The timer thread: answers the requests whose time limit passed.
  void watch_time_limits();
  /// Takes the request's entry out (nothing when it was answered already).
  std::optional<waiting> take(uint64_t id);

  caf::actor companion_;
  caf::strong_actor_ptr self_;
  mutable std::mutex mtx_;
  std::condition_variable wake_;
  std::unordered_map<uint64_t, waiting> pending_;
  uint64_t next_id_ = 1;
  clock::time_point next_check_ = clock::time_point::max();
  bool stopping_ = false;
  std::thread timer_;
};

} // namespace actorserve
