#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "net/http/waiting_clients.hpp"

using namespace actorserve;
using namespace std::chrono_literals;

namespace {

struct fake_connection : waiting_clients::entry {
  std::vector<waiting_clients::clock::time_point>* log = nullptr;
  int watched = 0;
  void watch_now() override {
    ++watched;
    if (log)
      log->push_back(waiting_clients::clock::now());
  }
};

} // namespace

TEST_CASE("waiting_clients watches a request only once it has waited, and never one answered "
          "before", "[http]") {
  boost::asio::io_context loop;
  waiting_clients waiting{loop, 20ms};
  std::vector<waiting_clients::clock::time_point> log;
  fake_connection answered, slow, later;
  slow.log = &log;
  later.log = &log;
  auto t0 = waiting_clients::clock::now();
  waiting.add(answered);
  waiting.add(slow);
  waiting.remove(answered); // its answer came first
  waiting.remove(answered); // (twice: nothing)
  CHECK(waiting.size() == 1);
  loop.run_for(5ms);
  waiting.add(later);
  // The first sweep (20 ms after the first add) watches `slow`; `later` waits for a second one.
  while (log.size() < 2 && waiting_clients::clock::now() - t0 < 5s)
    loop.run_one_for(100ms);
  REQUIRE(log.size() == 2);
  CHECK(answered.watched == 0);
  CHECK(slow.watched == 1);
  CHECK(later.watched == 1);
  CHECK(log[0] - t0 >= 20ms);
  CHECK(log[1] - t0 >= 25ms); // (20 ms after it began waiting)
  CHECK(waiting.size() == 0);
  // Nothing waits: the timer is not set again, and the loop runs out of work.
  CHECK(loop.run_for(50ms) == 0);
}

TEST_CASE("waiting_clients, closed, lets go of what waits and watches nothing", "[http]") {
  boost::asio::io_context loop;
  waiting_clients waiting{loop, 1ms};
  fake_connection a, b;
  waiting.add(a);
  waiting.add(b);
  waiting.close();
  CHECK(waiting.size() == 0);
  waiting.remove(a); // (a late answer: nothing)
  loop.run_for(20ms);
  CHECK(a.watched + b.watched == 0);
}
