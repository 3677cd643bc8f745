#include <catch2/catch.hpp>

#include "runtime/supervision_policy.hpp"

using namespace actorserve;
using v = std::vector<std::size_t>;

namespace {
const auto P = restart_type::permanent;
const auto T = restart_type::transient;
const auto X = restart_type::temporary;
} // namespace

TEST_CASE("restart types decide whether an exited child comes back", "[supervision]") {
  CHECK(should_restart(P, false));
  CHECK(should_restart(P, true));
  CHECK_FALSE(should_restart(T, false));
  CHECK(should_restart(T, true));
  CHECK_FALSE(should_restart(X, true));
  CHECK(parse_restart_type("transient") == T);
  CHECK_FALSE(parse_restart_type("sometimes"));
  CHECK(parse_restart_strategy("rest_for_one") == restart_strategy::rest_for_one);
  CHECK(to_string(restart_strategy::one_for_all) == "one_for_all");
}

TEST_CASE("one_for_one restarts only the failed child", "[supervision]") {
  auto p = plan_restart(restart_strategy::one_for_one, {P, P, P}, 1, true);
  CHECK(p.stop.empty());
  CHECK(p.restart == v{1});
}

TEST_CASE("one_for_all stops the others in reverse order and restarts all in order",
          "[supervision]") {
  auto p = plan_restart(restart_strategy::one_for_all, {P, X, P, T}, 2, true);
  CHECK(p.stop == v{3, 1, 0});
  CHECK(p.restart == v{0, 2, 3}); // the temporary sibling is stopped for good
}

TEST_CASE("rest_for_one restarts the failed child and those started after it", "[supervision]") {
  auto p = plan_restart(restart_strategy::rest_for_one, {P, P, P, P}, 1, true);
  CHECK(p.stop == v{3, 2});
  CHECK(p.restart == v{1, 2, 3});
  auto last = plan_restart(restart_strategy::rest_for_one, {P, P, P}, 2, true);
  CHECK(last.stop.empty());
  CHECK(last.restart == v{2});
}

TEST_CASE("a child that is not to be restarted touches no sibling", "[supervision]") {
  CHECK(plan_restart(restart_strategy::one_for_all, {P, T, P}, 1, false).restart.empty());
  CHECK(plan_restart(restart_strategy::one_for_all, {P, T, P}, 1, false).stop.empty());
  CHECK(plan_restart(restart_strategy::rest_for_one, {X, P}, 0, true).restart.empty());
}
