#include "runtime/rolling_reload.hpp"

namespace actorserve {

rolling_reload::step rolling_reload::next(const standing_of& where) {
  if (over_)
    return {};
  started_ = false;
  while (!left_.empty()) {
    current_ = left_.front();
    left_.pop_front();
    switch (where(current_)) {
      case standing::serving: return {act::drain, current_, {}};
      case standing::held: return {act::start, current_, {}};
      case standing::gone: break; // (its supervisor starts it, and it loads the file anew then)
    }
  }
  over_ = true;
  current_.clear();
  return {act::done, {}, {}};
}

rolling_reload::step rolling_reload::on_drained(const std::string& worker) {
  if (over_ || !is_current(worker))
    return {};
  return {act::stop_start, worker, {}};
}

void rolling_reload::on_started(const std::string& worker) {
  if (!over_ && is_current(worker))
    started_ = true;
}

rolling_reload::step rolling_reload::on_starting(const std::string& worker) {
  if (over_ || !is_current(worker) || !started_)
    return {};
  over_ = true; // started again and down again: it did not come back
  return {act::failed, worker, "it failed to start"};
}

rolling_reload::step rolling_reload::on_ready(const std::string& worker, const standing_of& where) {
  if (over_ || !is_current(worker))
    return {};
  return next(where);
}

rolling_reload::step rolling_reload::on_given_up(const std::string& worker) {
  if (over_ || !is_current(worker))
    return {};
  over_ = true;
  return {act::abandoned, worker, "was given up by its supervisor while it was being reloaded"};
}

rolling_reload::step rolling_reload::on_request_failed(const std::string& worker,
                                                       const std::string& why) {
  if (over_ || !is_current(worker))
    return {};
  over_ = true;
  return {act::failed, worker, why};
}

} // namespace actorserve
