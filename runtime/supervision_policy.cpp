#include "runtime/supervision_policy.hpp"

namespace actorserve {

const std::pair<std::string_view, restart_type> restart_type_names[3] = {
  {"permanent", restart_type::permanent},
  {"transient", restart_type::transient},
  {"temporary", restart_type::temporary}};

const std::pair<std::string_view, restart_strategy> restart_strategy_names[3] = {
  {"one_for_one", restart_strategy::one_for_one},
  {"one_for_all", restart_strategy::one_for_all},
  {"rest_for_one", restart_strategy::rest_for_one}};

namespace {

template <class E, std::size_t N>
std::optional<E> parse_name(const std::pair<std::string_view, E> (&names)[N], const std::string& s) {
  for (auto& [name, value] : names)
    if (s == name)
      return value;
  return std::nullopt;
}

template <class E, std::size_t N>
std::string name_of(const std::pair<std::string_view, E> (&names)[N], E x) {
  for (auto& [name, value] : names)
    if (value == x)
      return std::string(name);
  return "?";
}

} // namespace

std::optional<restart_type> parse_restart_type(const std::string& s) {
  return parse_name(restart_type_names, s);
}

std::optional<restart_strategy> parse_restart_strategy(const std::string& s) {
  return parse_name(restart_strategy_names, s);
}

std::string to_string(restart_type x) {
  return name_of(restart_type_names, x);
}

std::string to_string(restart_strategy x) {
  return name_of(restart_strategy_names, x);
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
