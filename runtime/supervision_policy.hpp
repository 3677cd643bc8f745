// Supervision as Erlang/OTP defines it, free of CAF: a child's restart type, a supervisor's
// strategy, and which children a failure restarts. The supervisor actor (actors/supervision.hpp)
// applies these decisions; restart intensity and backoff come from restart_tracker.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace actorserve {

/// permanent: always restarted; transient: restarted only after an abnormal exit; temporary:
/// never restarted (and a sibling strategy that stops it does not bring it back).
enum class restart_type { permanent, transient, temporary };

/// one_for_one: only the failed child restarts; one_for_all: every child is stopped (in reverse
/// start order) and restarted (in start order); rest_for_one: the failed child and the children
/// started after it.
enum class restart_strategy { one_for_one, one_for_all, rest_for_one };

/// Each restart type and strategy by the name a deployment file gives it.
extern const std::pair<std::string_view, restart_type> restart_type_names[3];
extern const std::pair<std::string_view, restart_strategy> restart_strategy_names[3];

std::optional<restart_type> parse_restart_type(const std::string& s);
std::optional<restart_strategy> parse_restart_strategy(const std::string& s);
std::string to_string(restart_type x);
std::string to_string(restart_strategy x);

/// Whether a child of `type` that exited (abnormally or not) is to be restarted.
bool should_restart(restart_type type, bool abnormal);

/// What a failure of child `failed` (index in start order) means for the children `types`:
/// `stop` lists the siblings to stop first, in the order to stop them (reverse start order);
/// `restart` lists the children to start again, in start order (temporary children that were
/// stopped are not among them). Both empty when the failed child is not to be restarted.
struct restart_plan {
  std::vector<std::size_t> stop;
  std::vector<std::size_t> restart;
};
restart_plan plan_restart(restart_strategy strategy, const std::vector<restart_type>& types,
                          std::size_t failed, bool abnormal);

} // namespace actorserve
