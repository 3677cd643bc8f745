#include "runtime/api_access.hpp"

#include <array>

namespace actorserve {
namespace {

constexpr std::array<std::pair<api_group, const char*>, 9> names{{
  {api_group::health, "health"},
  {api_group::metadata, "metadata"},
  {api_group::inference, "inference"},
  {api_group::model_config, "model-config"},
  {api_group::model_repository, "model-repository"},
  {api_group::shared_memory, "shared-memory"},
  {api_group::statistics, "statistics"},
  {api_group::metrics, "metrics"},
  {api_group::admin, "admin"},
}};

/// Equal strings, in a time that does not depend on where they first differ.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

} // namespace

const char* const api_groups_text = "\"health\", \"metadata\", \"inference\", \"model-config\", "
                                    "\"model-repository\", \"shared-memory\", \"statistics\", "
                                    "\"metrics\" or \"admin\"";

const char* const model_control_off = "model control is switched off on this server "
                                      "(server.model_control)";

const char* to_string(api_group g) {
  for (auto& [group, name] : names)
    if (group == g)
      return name;
  return "?";
}

std::optional<api_group> parse_api_group(std::string_view name) {
  for (auto& [group, text] : names)
    if (name == text)
      return group;
  return std::nullopt;
}

const api_restriction* restriction_of(const std::vector<api_restriction>& all, api_group g) {
  for (auto& r : all)
    for (auto x : r.groups)
      if (x == g)
        return &r;
  return nullptr;
}

std::optional<std::string> refusal(const std::vector<api_restriction>& all, api_group g,
                                   std::optional<std::string_view> presented) {
  auto* r = restriction_of(all, g);
  if (!r || (presented && same_secret(*presented, r->value)))
    return std::nullopt;
  return std::string("API group '") + to_string(g) + "' is restricted on this server: send '"
         + r->header + "' with its configured value (server.restricted_apis)";
}

} // namespace actorserve
