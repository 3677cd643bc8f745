// Metrics of pipeline stages: per stage step, how long each item took (a fetch, a decode and
// preprocess), the bytes fetched, the items in flight and the failures by reason. Stages are
// made by the gateway (and by plugins' code), not from the metrics' construction, so they live
// in a process-wide table that the Prometheus exposition reads; a stage step keeps its series
// over restarts of its actor.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/metrics.hpp"

namespace actorserve {

class stage_metrics {
public:
  /// The metrics of stage step `name` ("pipeline/step/stage") of kind `kind` ("fetch"), made at
  /// first use and never removed (the reference stays valid).
  static stage_metrics& for_stage(const std::string& name, const std::string& kind);

  /// Every stage's metrics, in the order they were made.
  static void for_each(const std::function<void(const stage_metrics&)>& f);

  /// One item done: its duration, its bytes (fetched), and its failure (errc::none: success).
  void observe(int64_t duration_ns, uint64_t bytes, errc failure) noexcept;

  const std::string name, kind;
  atomic_histogram seconds;
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> in_flight{0};
  std::array<std::atomic<uint64_t>, outcome_count> failures{}; // by error code

  stage_metrics(std::string n, std::string k);
};

} // namespace actorserve
