// Plugins: shared libraries, built outside this tree against an installed actorserve
// (find_package(actorserve): actorserve_add_plugin), listed in the deployment file's "plugins"
// and loaded when it is loaded, before it is checked, so that the stages and backends they
// register can be named in it. A plugin is refused, naming its file, when it was built for
// another plugin ABI or against headers whose types have other layouts than this node's (another
// actorserve, another standard library); it then registers nothing.
//
// In a plugin:
//
//     #include "runtime/plugin.hpp"
//     #include "runtime/stage.hpp"
//     void register_mine() { stage_registry::global().add("mine", {describe, spawn}); }
//     ACTORSERVE_PLUGIN(register_mine)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "runtime/config.hpp"
#include "runtime/messages.hpp"

/// Raised when what a plugin may rely on changes incompatibly.
#define ACTORSERVE_PLUGIN_ABI 2

namespace actorserve {

/// A fingerprint of the types a plugin and the node exchange (their sizes), as the including
/// side's compiler and headers lay them out.
inline uint64_t plugin_layout() {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t x : {sizeof(std::string), sizeof(std::vector<int>), sizeof(tensor),
                     sizeof(stage_input), sizeof(stage_output), sizeof(infer_request),
                     sizeof(model_config)})
    h = (h ^ x) * 1099511628211ull;
  return h;
}

/// Loads the plugin at `path` (once per process: loading it again does nothing). The error
/// (errc::invalid_config) names the file and what was wrong.
caf::error load_plugin(const std::string& path);

/// Loads the plugins that the deployment file at `path` lists (its "plugins", relative to its
/// folder). A file that cannot be read or parsed is left to the deployment's own loading.
caf::error load_plugins_of(const std::string& path);

} // namespace actorserve

/// Defines a plugin's entry points: `init` (a `void()` function) registers its stages and
/// backends; it is called once, after the ABI check passed.
#define ACTORSERVE_PLUGIN(init)                                                              \
  extern "C" __attribute__((visibility("default"))) uint32_t actorserve_plugin_abi() {       \
    return ACTORSERVE_PLUGIN_ABI;                                                            \
  }                                                                                          \
  extern "C" __attribute__((visibility("default"))) uint64_t actorserve_plugin_layout() {    \
    return ::actorserve::plugin_layout();                                                    \
  }                                                                                          \
  extern "C" __attribute__((visibility("default"))) void actorserve_plugin_init() { init(); }
