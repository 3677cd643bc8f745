// What becomes of a planned batch's requests (runtime/dispatch_plan).
#include <catch2/catch.hpp>

#include "runtime/dispatch_plan.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

namespace {

const time_point t0{std::chrono::seconds(1000)};

planned_request req(request_id id, std::chrono::milliseconds deadline_in = 10s) {
  return {id, false, t0 + deadline_in, false};
}

} // namespace

TEST_CASE("a planned batch runs whole when nothing stands in its way", "[dispatch]") {
  auto v = sort_planned({req(1), req(2), req(3)}, t0 + 5ms);
  CHECK(v.take == std::vector<request_id>{1, 2, 3});
  CHECK(v.back.empty());
  CHECK_FALSE(v.held_back());
  CHECK(sort_planned({req(1)}, std::nullopt).take == std::vector<request_id>{1}); // no estimate
}

TEST_CASE("requests whose client left are dropped, the rest run", "[dispatch]") {
  auto gone = req(2);
  gone.cancelled = true;
  auto v = sort_planned({req(1), gone, req(3)}, std::nullopt);
  CHECK(v.cancelled == std::vector<request_id>{2});
  CHECK(v.take == std::vector<request_id>{1, 3});
}

TEST_CASE("a request the batch could not finish for in time is answered now, and the others go "
          "back in order to batch with those behind them", "[dispatch]") {
  auto v = sort_planned({req(1), req(2, 3ms), req(3)}, t0 + 5ms);
  CHECK(v.doomed == std::vector<request_id>{2});
  CHECK(v.take.empty());
  CHECK(v.back == std::vector<request_id>{1, 3});
  CHECK_FALSE(v.held_back()); // (a request was answered: the round goes on)
}

TEST_CASE("requests this worker failed go back for another, in order", "[dispatch]") {
  auto failed = req(1);
  failed.failed_on_worker = true;
  auto v = sort_planned({failed, req(2), req(3)}, std::nullopt);
  CHECK(v.take == std::vector<request_id>{2, 3});
  CHECK(v.back == std::vector<request_id>{1});
  CHECK(v.held_back());
  auto failed_and_doomed = sort_planned({failed, req(2, 1ms), req(3)}, t0 + 5ms);
  CHECK(failed_and_doomed.back == std::vector<request_id>{3, 1}); // the runnable ones first
}
