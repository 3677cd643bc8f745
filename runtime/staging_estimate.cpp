#include "runtime/staging_estimate.hpp"

#include <algorithm>

namespace actorserve {

namespace {

constexpr double weight = 0.2; // of the newest sample in the moving averages
constexpr std::chrono::microseconds margin{300};

} // namespace

void staging_estimate::on_dispatch(time_point now, uint64_t batch, uint32_t rows) {
  auto done = finish_if_dispatched(now, rows);
  held_.emplace_back(batch, rows);
  if (done)
    busy_until_ = done;
}

std::optional<time_point> staging_estimate::finish_if_dispatched(time_point now,
                                                                  uint32_t rows) const {
  if (!learned())
    return std::nullopt;
  // An idle device starts once the batch is staged; a busy one when it is done with the rest.
  auto start = held_.empty() || !busy_until_ ? now + lead() : std::max(*busy_until_, now + lead());
  return start + batch_time(rows);
}

void staging_estimate::on_done(time_point now, uint64_t batch, std::optional<nanoseconds> device,
                                std::optional<nanoseconds> staging) {
  auto it = std::find_if(held_.begin(), held_.end(),
                         [&](const std::pair<uint64_t, uint32_t>& h) { return h.first == batch; });
  if (it == held_.end())
    return;
  auto rows = it->second;
  held_.erase(it);
  if (device && device->count() > 0 && rows > 0) { // (a worker that reports no time teaches nothing)
    auto per_row = static_cast<double>(device->count()) / rows;
    auto stage = static_cast<double>(staging.value_or(nanoseconds{0}).count());
    if (samples_ == 0) {
      ns_per_row_ = per_row;
      staging_ns_ = stage;
    } else {
      ns_per_row_ += weight * (per_row - ns_per_row_);
      staging_ns_ += weight * (stage - staging_ns_);
    }
    ++samples_;
  }
  replan(now);
}

void staging_estimate::replan(time_point now) {
  if (held_.empty() || !learned()) {
    busy_until_.reset();
    return;
  }
  // The next held batch was staged meanwhile: the device is on it now.
  auto t = now;
  for (auto& h : held_)
    t += batch_time(h.second);
  busy_until_ = t;
}

std::optional<time_point> staging_estimate::stage_next_at() const {
  if (held_.empty() || !busy_until_)
    return std::nullopt;
  return *busy_until_ - lead();
}

staging_estimate::nanoseconds staging_estimate::batch_time(uint32_t rows) const {
  return nanoseconds{static_cast<int64_t>(ns_per_row_ * rows)};
}

staging_estimate::nanoseconds staging_estimate::lead() const {
  return nanoseconds{static_cast<int64_t>(staging_ns_)} + margin;
}

} // namespace actorserve
