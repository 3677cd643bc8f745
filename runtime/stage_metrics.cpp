#include "runtime/stage_metrics.hpp"

#include <memory>
#include <mutex>
#include <vector>

namespace actorserve {
namespace {

struct table {
  std::mutex mtx;
  std::vector<std::unique_ptr<stage_metrics>> stages;
};

table& the_table() {
  static table t;
  return t;
}

// 100 µs .. 30 s: a decode is milliseconds, a download can be seconds.
const std::vector<double> item_bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10, 30};

} // namespace

stage_metrics::stage_metrics(std::string n, std::string k)
  : name(std::move(n)), kind(std::move(k)), seconds(item_bounds) {
}

stage_metrics& stage_metrics::for_stage(const std::string& name, const std::string& kind) {
  auto& t = the_table();
  std::lock_guard<std::mutex> guard{t.mtx};
  for (auto& s : t.stages)
    if (s->name == name)
      return *s;
  t.stages.push_back(std::make_unique<stage_metrics>(name, kind));
  return *t.stages.back();
}

void stage_metrics::for_each(const std::function<void(const stage_metrics&)>& f) {
  auto& t = the_table();
  std::lock_guard<std::mutex> guard{t.mtx};
  for (auto& s : t.stages)
    f(*s);
}

void stage_metrics::observe(int64_t duration_ns, uint64_t n, errc failure) noexcept {
  items.fetch_add(1, std::memory_order_relaxed);
  seconds.observe(static_cast<double>(duration_ns) * 1e-9);
  bytes.fetch_add(n, std::memory_order_relaxed);
  if (failure != errc::none && static_cast<std::size_t>(failure) < failures.size())
    failures[static_cast<std::size_t>(failure)].fetch_add(1, std::memory_order_relaxed);
}

} // namespace actorserve
