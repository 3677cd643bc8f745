// net/infer_asker: a front's thread asks an actor without an actor of its own; every ask ends in
// exactly one call of its callback (answer, error, receiver gone, time limit, shutdown).
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <memory>

#include <caf/all.hpp>

#include "net/infer_asker.hpp"
#include "runtime/error.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

namespace {

/// The callback's calls: how many, and the first result.
struct calls {
  std::atomic<int> count{0};
  std::promise<caf::expected<infer_response>> first;

  infer_asker::done_fn fn() {
    return [this](caf::expected<infer_response> r) {
      if (count.fetch_add(1) == 0)
        first.set_value(std::move(r));
    };
  }

  caf::expected<infer_response> wait(std::chrono::milliseconds limit = 5000ms) {
    auto f = first.get_future();
    REQUIRE(f.wait_for(limit) == std::future_status::ready);
    return f.get();
  }
};

infer_request request_to(const std::string& model, uint64_t id) {
  infer_request r;
  r.model = model;
  r.id = id;
  return r;
}

/// Answers each request with its id as the response's (or an error for model "bad").
caf::behavior echo(caf::event_based_actor*) {
  return {[](infer_atom, infer_request& req) -> caf::result<infer_response> {
    if (req.model == "bad")
      return make_error(errc::invalid_input, "bad request " + std::to_string(req.id));
    infer_response res;
    res.id = req.id;
    res.model = req.model;
    return res;
  }};
}

/// Holds every request's promise and answers none until told (tick_atom: answers them all).
struct holder_state {
  std::vector<caf::response_promise> held;
};
caf::behavior holder(caf::stateful_actor<holder_state>* self) {
  return {[self](infer_atom, infer_request&) -> caf::result<infer_response> {
            auto rp = self->make_response_promise();
            self->state.held.push_back(rp);
            return caf::delegated<infer_response>{};
          },
          [self](tick_atom) {
            for (auto& rp : self->state.held)
              rp.deliver(infer_response{});
            self->state.held.clear();
          }};
}

struct real_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  real_system() {
    cfg.add_message_types<caf::id_block::actorserve>();
    cfg.set("scheduler.max-threads", size_t{2});
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  template <class Handle>
  static caf::strong_actor_ptr ptr(const Handle& h) {
    return caf::actor_cast<caf::strong_actor_ptr>(h);
  }
};

} // namespace

TEST_CASE("an asked actor's answer, or its error, reaches the callback once", "[asker]") {
  real_system s;
  auto a = s.sys->spawn(echo);
  {
    infer_asker asker{*s.sys};
    calls ok, bad;
    asker.ask(s.ptr(a), request_to("m", 7), infer_asker::clock::now() + 10s, ok.fn());
    asker.ask(s.ptr(a), request_to("bad", 8), infer_asker::clock::now() + 10s, bad.fn());
    auto res = ok.wait();
    REQUIRE(res);
    CHECK(res->id == 7);
    CHECK(res->model == "m");
    auto err = bad.wait();
    REQUIRE_FALSE(err);
    CHECK(error_code(err.error()) == errc::invalid_input);
    CHECK(error_message(err.error()) == "bad request 8");
    CHECK(asker.pending() == 0);
    CHECK(ok.count == 1);
    CHECK(bad.count == 1);
  }
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("a receiver that is gone, or none, is answered at once with not_ready", "[asker]") {
  real_system s;
  auto a = s.sys->spawn(echo);
  {
    caf::scoped_actor self{*s.sys};
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {});
  }
  infer_asker asker{*s.sys};
  calls gone, none;
  asker.ask(s.ptr(a), request_to("m", 1), infer_asker::clock::now() + 10s, gone.fn());
  auto err = gone.wait();
  REQUIRE_FALSE(err);
  CHECK(error_code(err.error()) == errc::not_ready);
  asker.ask(nullptr, request_to("m", 2), infer_asker::clock::now() + 10s, none.fn());
  err = none.wait(0ms); // (on this thread, before ask returned)
  REQUIRE_FALSE(err);
  CHECK(error_code(err.error()) == errc::not_ready);
  CHECK(asker.pending() == 0);
}

TEST_CASE("a request nobody answers ends at its time limit, and a late answer is dropped",
          "[asker]") {
  real_system s;
  auto h = s.sys->spawn(holder);
  {
    infer_asker asker{*s.sys};
    calls late;
    auto t0 = infer_asker::clock::now();
    asker.ask(s.ptr(h), request_to("slow", 3), t0 + 200ms, late.fn());
    CHECK(asker.pending() == 1);
    auto err = late.wait();
    auto waited = infer_asker::clock::now() - t0;
    REQUIRE_FALSE(err);
    CHECK(error_code(err.error()) == errc::deadline_exceeded);
    CHECK(error_message(err.error()).find("model 'slow'") != std::string::npos);
    CHECK(waited >= 200ms);
    CHECK(asker.pending() == 0);
    caf::anon_send(h, tick_atom::value); // (the answer after the limit: nobody to give it to)
    std::this_thread::sleep_for(100ms);
    CHECK(late.count == 1);
  }
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST_CASE("an asker that stops answers what is still pending", "[asker]") {
  real_system s;
  auto h = s.sys->spawn(holder);
  calls pending;
  {
    infer_asker asker{*s.sys};
    asker.ask(s.ptr(h), request_to("m", 4), infer_asker::clock::now() + 60s, pending.fn());
    CHECK(asker.pending() == 1);
  }
  auto err = pending.wait(0ms);
  REQUIRE_FALSE(err);
  CHECK(error_code(err.error()) == errc::not_ready);
  CHECK(error_message(err.error()).find("stopping") != std::string::npos);
  caf::anon_send(h, tick_atom::value); // (after the asker is gone: dropped, nothing crashes)
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  CHECK(pending.count == 1);
}
