#include "runtime/supervision_policy.hpp"

namespace actorserve {

std::optional<restart_type> parse_restart_type(const std::string& s) {
  if (s == "permanent")
    return restart_type::permanent;
  if (s == "transient")
    return restart_type::transient;
  if (s == "temporary")
    return restart_type::temporary;
  return std::nullopt;
}

std::optional<restart_strategy> parse_restart_strategy(const std::string& s) {
  if (s == "one_for_one")
    return restart_strategy::one_for_one;
  if (s == "one_for_all")
    return restart_strategy::one_for_all;
  if (s == "rest_for_one")
    return restart_strategy::rest_for_one;
  return std::nullopt;
}

std::string to_string(restart_type x) {
  switch (x) {
    case restart_type::permanent: return "permanent";
    case restart_type::transient: return "transient";
    case restart_type::temporary: return "temporary";
  }
  return "?";
}

std::string to_string(restart_strategy x) {
  switch (x) {
    case restart_strategy::one_for_one: return "one_for_one";
    case restart_strategy::one_for_all: return "one_for_all";
    case restart_strategy::rest_for_one: return "rest_for_one";
  }
  return "?";
}

bool should_restart(restart_type type, bool abnormal) {
  switch (type) {
    case restart_type::permanent: return true;
    case restart_type::transient: return abnormal;
    case restart_type::temporary: return false;
  }
  return false;
}

restart_plan plan_restart(restart_strategy strategy, const std::vector<restart_type>& types,
                          std::size_t failed, bool abnormal) {
  restart_plan plan;
  if (failed >= types.size() || !should_restart(types[failed], abnormal))
    return plan;
  std::size_t first = 0, last = types.size(); // the scope: [first, last)
  if (strategy == restart_strategy::one_for_one) {
    first = failed;
    last = failed + 1;
  } else if (strategy == restart_strategy::rest_for_one) {
    first = failed;
  }
  for (std::size_t i = last; i-- > first;)
    if (i != failed)
      plan.stop.push_back(i);
  for (std::size_t i = first; i < last; ++i)
    if (i == failed || types[i] != restart_type::temporary)
      plan.restart.push_back(i);
  return plan;
}

} // namespace actorserve
