// Asking an actor from outside the actor system (an HTTP I/O thread) without blocking: a
// short-lived actor sends the request with a timeout and hands the answer to a callback, which
// runs on a CAF thread (post it back to your own executor). Every ask ends in exactly one call.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <tuple>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include "runtime/error.hpp"

namespace actorserve {

template <class Result, class Handle, class... Ts>
void ask(caf::actor_system& sys, const Handle& dest, std::chrono::nanoseconds timeout,
         std::function<void(caf::expected<Result>)> done, Ts&&... xs) {
  if (!dest) { // e.g. the gateway between a crash and its restart
    done(make_error(errc::not_ready, "the server is restarting its gateway; try again"));
    return;
  }
  auto args = std::make_shared<std::tuple<std::decay_t<Ts>...>>(std::forward<Ts>(xs)...);
  sys.spawn([dest, timeout, done = std::move(done), args](caf::event_based_actor* self) {
    std::apply(
      [&](auto&... a) {
        self->request(dest, timeout, std::move(a)...)
          .then([done](Result& r) { done(std::move(r)); },
                [done](caf::error& e) { done(std::move(e)); });
      },
      *args);
  });
}

} // namespace actorserve
