// net/http/loop_inbox.hpp — work handed to one HTTP event loop from other threads (CAF threads
// delivering answers), run on the loop's thread in arrival order. The loop is posted to only when
// the inbox was empty, so a burst of answers (a batch's, for the connections of this loop) costs
// one asio post and one wake-up of the loop (a reactor interrupt: an epoll_ctl) instead of one per
// answer.
#pragma once

#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace actorserve {

class loop_inbox {
public:
  explicit loop_inbox(boost::asio::io_context& loop) : loop_(loop) {}
  loop_inbox(const loop_inbox&) = delete;
  loop_inbox& operator=(const loop_inbox&) = delete;

  /// Runs `fn` on the loop's thread (later, also when called there); after close(), drops it
  /// (on this thread). Thread-safe.
  void post(std::function<void()> fn) {
    bool first = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (closed_)
        return; // (`fn` and what it holds go here, while the server is still there)
      first = items_.empty();
      items_.push_back(std::move(fn));
    }
    if (first)
      boost::asio::post(loop_, [this] { drain(); });
  }

  /// The loop stopped for good: what waits is dropped now (a session it holds ends while the
  /// server it belongs to is still whole), and what comes later is dropped as it comes.
  void close() {
    std::vector<std::function<void()>> dropped;
    std::lock_guard<std::mutex> guard{mtx_};
    closed_ = true;
    dropped.swap(items_);
  }

private:
  void drain() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      running_.swap(items_);
    }
    for (auto& fn : running_)
      fn();
    running_.clear(); // (keeps its capacity for the next burst)
  }

  boost::asio::io_context& loop_;
  std::mutex mtx_;
  std::vector<std::function<void()>> items_;   // arrived, not yet run (under mtx_)
  std::vector<std::function<void()>> running_; // being run (the loop's thread only)
  bool closed_ = false;                          // (under mtx_)
};

} // namespace actorserve
