#include "runtime/dispatch_plan.hpp"

namespace actorserve {

dispatch_verdict sort_planned(const std::vector<planned_request>& batch,
                              std::optional<time_point> done) {
  dispatch_verdict v;
  std::vector<request_id> failed_here;
  for (auto& r : batch) {
    if (r.cancelled)
      v.cancelled.push_back(r.id);
    else if (done && r.deadline < *done)
      v.doomed.push_back(r.id);
    else
      (r.failed_on_worker ? failed_here : v.take).push_back(r.id);
  }
  if (!v.doomed.empty()) { // the rest all go back, to batch with the requests behind them
    v.back = std::move(v.take);
    v.take.clear();
  }
  v.back.insert(v.back.end(), failed_here.begin(), failed_here.end());
  return v;
}

} // namespace actorserve
