#include "runtime/batching.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

namespace actorserve {

bool same_group(const pending_request& a, const pending_request& b) {
  return a.shape_key == b.shape_key && a.split_group == b.split_group;
}

batch_queue::batch_queue(batching_options opts) : opts_(std::move(opts)) {
  std::sort(opts_.preferred_batch_sizes.begin(), opts_.preferred_batch_sizes.end());
}

admission batch_queue::push(pending_request req) {
  if (opts_.max_batch_size > 0 && req.rows > opts_.max_batch_size)
    return admission::too_many_rows;
  if (queue_.size() >= opts_.max_queue_size)
    return admission::queue_full;
  auto at = queue_.end(); // (equal priorities: at the end at once)
  while (at != queue_.begin() && std::prev(at)->priority > req.priority)
    --at;
  queue_.insert(at, std::move(req));
  return admission::accepted;
}

std::vector<request_id> batch_queue::expire(time_point now) {
  std::vector<request_id> out;
  auto keep = std::stable_partition(queue_.begin(), queue_.end(),
                                    [&](const pending_request& r) { return r.deadline > now; });
  for (auto it = keep; it != queue_.end(); ++it)
    out.push_back(it->id);
  queue_.erase(keep, queue_.end());
  return out;
}

bool batch_queue::remove(request_id id) {
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const pending_request& r) { return r.id == id; });
  if (it == queue_.end())
    return false;
  queue_.erase(it);
  return true;
}

std::optional<batch_plan> batch_queue::pop_due(time_point now, bool full_only) {
  if (queue_.empty())
    return std::nullopt;
  if (opts_.max_batch_size == 0) { // no batching: the oldest request runs alone, at once
    if (full_only)
      return std::nullopt;
    batch_plan plan{{queue_.front().id}, queue_.front().rows};
    queue_.pop_front();
    return plan;
  }
  // Visit groups in the order of their oldest request; a group is identified by its key and
  // split group.
  std::set<std::pair<std::string, uint64_t>> visited;
  for (std::size_t head = 0; head < queue_.size(); ++head) {
    const pending_request key = queue_[head]; // a copy: the loop below erases head
    if (!visited.emplace(key.shape_key, key.split_group).second)
      continue;
    // Rows this group could put in one batch: whole requests, in order, while they fit.
    uint32_t fill = 0;
    bool more = false; // requests of the group that did not fit
    auto oldest = queue_[head].enqueued; // (with priorities, not always the head's)
    for (std::size_t i = head; i < queue_.size(); ++i) {
      if (!same_group(queue_[i], key))
        continue;
      if (fill + queue_[i].rows > opts_.max_batch_size) {
        more = true; // (due now: how long the others waited does not matter)
        break;
      }
      fill += queue_[i].rows;
      oldest = std::min(oldest, queue_[i].enqueued);
    }
    uint32_t target = 0; // how many rows to send now; 0 = not due
    bool delay_over = now - oldest >= opts_.max_queue_delay;
    if (fill == opts_.max_batch_size || more) {
      target = fill;
    } else if (full_only) {
      target = 0;
    } else if (delay_over) {
      target = fill;
    } else {
      for (auto it = opts_.preferred_batch_sizes.rbegin();
           it != opts_.preferred_batch_sizes.rend(); ++it)
        if (*it <= fill) {
          target = *it;
          break;
        }
    }
    if (target == 0)
      continue;
    batch_plan plan;
    for (auto it = queue_.begin() + static_cast<std::ptrdiff_t>(head); it != queue_.end();) {
      if (same_group(*it, key) && plan.rows + it->rows <= target) {
        plan.rows += it->rows;
        plan.ids.push_back(it->id);
        it = queue_.erase(it);
        if (plan.rows == target)
          break;
      } else {
        ++it;
      }
    }
    return plan;
  }
  return std::nullopt;
}

std::optional<time_point> batch_queue::next_event(bool with_batch_triggers) const {
  std::optional<time_point> next;
  auto consider = [&](time_point t) {
    if (!next || t < *next)
      next = t;
  };
  for (auto& r : queue_) {
    consider(r.deadline);
    if (with_batch_triggers) // (a group's delay runs out first for its oldest request)
      consider(opts_.max_batch_size == 0 ? r.enqueued : r.enqueued + opts_.max_queue_delay);
  }
  return next;
}

} // namespace actorserve
