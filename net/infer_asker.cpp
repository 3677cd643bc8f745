#include "net/infer_asker.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_companion.hpp>

#include "runtime/error.hpp"

namespace actorserve {

namespace {

/// When the timer thread looks again with nothing due sooner.
constexpr auto idle_check = std::chrono::seconds(1);

} // namespace

caf::actor_companion* infer_asker::companion() const {
  return static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(companion_));
}

infer_asker::infer_asker(caf::actor_system& sys) {
  // (hidden: the actor system does not wait for it at shutdown; the destructor stops it)
  companion_ = sys.spawn<caf::actor_companion, caf::hidden>();
  self_ = caf::actor_cast<caf::strong_actor_ptr>(companion_);
  companion()->on_enqueue([this](caf::mailbox_element_ptr m) { on_message(std::move(m)); });
  timer_ = std::thread([this] { watch_time_limits(); });
}

infer_asker::~infer_asker() {
  // No answer reaches a callback after this: the handler is swapped out under the companion's
  // lock, which a running handler holds (shared). (actor_companion::disconnect is declared but
  // not built into Debian's CAF 0.17.6; this is what it does.)
  companion()->on_enqueue(nullptr);
  companion()->cleanup(caf::make_error(caf::exit_reason::user_shutdown), nullptr);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  wake_.notify_one();
  timer_.join();
  for (auto& kv : pending_)
    kv.second.done(make_error(errc::not_ready, "the server is stopping: request to model '"
                                                 + kv.second.model + "' not answered"));
}

std::size_t infer_asker::pending() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return pending_.size();
}

void infer_asker::ask(const caf::strong_actor_ptr& dest, infer_request req,
                      clock::time_point give_up, done_fn done) {
  if (!dest) // e.g. the gateway between a crash and its restart
    return done(make_error(errc::not_ready, "the server is restarting its gateway; try again"));
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    id = next_id_++;
    pending_.emplace(id, waiting{std::move(done), give_up, req.model});
    if (give_up < next_check_) {
      next_check_ = give_up;
      wake_.notify_one();
    }
  }
  // (A receiver that is gone answers at once, on this thread: CAF bounces the request.)
  dest->get()->enqueue(caf::make_mailbox_element(self_, caf::make_message_id(id), {},
                                                 infer_atom::value, std::move(req)),
                       nullptr);
}

std::optional<infer_asker::waiting> infer_asker::take(uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = pending_.find(id);
  if (it == pending_.end())
    return std::nullopt;
  auto w = std::move(it->second);
  pending_.erase(it);
  return w;
}

void infer_asker::on_message(caf::mailbox_element_ptr m) {
  if (!m->mid.is_response()) // (an exit or down message: nothing asked for it)
    return;
  auto w = take(m->mid.request_id().integer_value());
  if (!w) // answered already: its time limit passed
    return;
  auto& content = m->content();
  if (content.match_elements<infer_response>())
    return w->done(std::move(content.get_mutable_as<infer_response>(0)));
  if (content.match_elements<caf::error>())
    return w->done(std::move(content.get_mutable_as<caf::error>(0)));
  w->done(make_error(errc::internal, "model '" + w->model + "' answered with an unexpected "
                                       "message: " + content.stringify()));
}

void infer_asker::watch_time_limits() {
  std::unique_lock<std::mutex> lock{mtx_};
  while (!stopping_) {
    auto now = clock::now();
    std::vector<waiting> expired;
    auto next = now + idle_check;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.give_up > now) {
        next = std::min(next, it->second.give_up);
        ++it;
        continue;
      }
      expired.push_back(std::move(it->second));
      it = pending_.erase(it);
    }
    next_check_ = next;
    lock.unlock();
    for (auto& w : expired)
      w.done(make_error(errc::deadline_exceeded,
                        "no answer from model '" + w.model + "' within the request's time "
                        "limit: the actor that held it was lost"));
    lock.lock();
    if (!stopping_ && next_check_ > clock::now())
      wake_.wait_until(lock, next_check_);
  }
}

} // namespace actorserve
