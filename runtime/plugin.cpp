#include "runtime/plugin.hpp"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <set>

#include <boost/json.hpp>

#include "runtime/error.hpp"
#include "runtime/file_text.hpp"

namespace actorserve {

namespace {

caf::error refused(const std::string& path, const std::string& why) {
  return make_error(errc::invalid_config, "plugin " + path + ": " + why);
}

} // namespace

caf::error load_plugin(const std::string& path) {
  static std::mutex mtx;
  static std::set<std::string> loaded;
  std::lock_guard<std::mutex> guard{mtx};
  auto file = std::filesystem::absolute(path).lexically_normal().string();
  if (loaded.count(file))
    return caf::none;
  // RTLD_NOW: a symbol the node does not have (a plugin built against another actorserve) is an
  // error here, not a crash later. RTLD_LOCAL: two plugins' own symbols do not meet.
  void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return refused(file, std::string("cannot be loaded: ") + dlerror());
  using abi_fn = uint32_t (*)();
  using layout_fn = uint64_t (*)();
  using init_fn = void (*)();
  auto abi = reinterpret_cast<abi_fn>(dlsym(lib, "actorserve_plugin_abi"));
  auto layout = reinterpret_cast<layout_fn>(dlsym(lib, "actorserve_plugin_layout"));
  auto init = reinterpret_cast<init_fn>(dlsym(lib, "actorserve_plugin_init"));
  if (!abi || !layout || !init) {
    dlclose(lib);
    return refused(file, "not an actorserve plugin (no ACTORSERVE_PLUGIN(...) entry points)");
  }
  if (abi() != ACTORSERVE_PLUGIN_ABI) {
    auto theirs = abi();
    dlclose(lib);
    return refused(file, "built for plugin ABI " + std::to_string(theirs) + ", this node has "
                           + std::to_string(ACTORSERVE_PLUGIN_ABI) + "; rebuild it against "
                           "this actorserve");
  }
  if (layout() != plugin_layout()) {
    dlclose(lib);
    return refused(file, "built against other actorserve headers or another C++ standard "
                         "library (its types' layouts differ from this node's); rebuild it "
                         "against this actorserve");
  }
  try {
    init();
  } catch (const std::exception& e) {
    return refused(file, std::string("its initialization failed: ") + e.what());
  }
  loaded.insert(file); // (never unloaded: its stages and backends stay registered)
  return caf::none;
}

caf::error load_plugins_of(const std::string& path) {
  auto text = read_file(path);
  if (!text)
    return caf::none;
  boost::json::error_code ec;
  auto doc = boost::json::parse(*text, ec);
  if (ec || !doc.is_object())
    return caf::none;
  auto* list = doc.get_object().if_contains("plugins");
  if (!list || !list->is_array())
    return caf::none; // (the deployment's own check says what is wrong)
  auto dir = std::filesystem::absolute(path).parent_path();
  for (auto& p : list->get_array()) {
    if (!p.is_string())
      continue;
    std::filesystem::path file(std::string(p.get_string()));
    if (file.is_relative())
      file = dir / file;
    if (auto err = load_plugin(file.string()))
      return err;
  }
  return caf::none;
}

} // namespace actorserve
