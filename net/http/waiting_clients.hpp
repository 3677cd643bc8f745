// net/http/waiting_clients.hpp — the connections of one HTTP loop whose inference request waits
// for its answer, so that a client that leaves has its request dropped (session::watch_client: a
// wait for the socket to turn readable, then a peek). Arming that wait costs the loop an
// epoll_ctl, and cancelling it an aborted handler, on every request, although nearly all of them
// are answered within a millisecond. So a request is watched only once it has waited `after`:
// a sweep on the loop, run every `after` while any request waits, arms the watch of those that
// have waited that long. A client that leaves is then noticed at most 2 x `after` late, while its
// request would still queue; one that leaves a request answered sooner costs nothing but the
// answer's unread bytes.
//
// The loop's thread only: add, remove, the sweep. A connection in the list stays alive (its
// request's answer holds it) until it removes itself as its answer arrives; `close` empties the
// list once the loop has stopped.
#pragma once

#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace actorserve {

class waiting_clients {
public:
  using clock = std::chrono::steady_clock;

  /// A connection that may be watched: linked into the list while its request waits.
  class entry {
  public:
    virtual ~entry() = default;

  protected:
    /// Its request has waited `after`: watch the client from now on (the loop's thread).
    virtual void watch_now() = 0;

  private:
    friend class waiting_clients;
    clock::time_point since_;
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
    bool linked_ = false;
  };

  waiting_clients(boost::asio::io_context& loop, std::chrono::microseconds after)
    : timer_(loop), after_(after) {}
  waiting_clients(const waiting_clients&) = delete;
  waiting_clients& operator=(const waiting_clients&) = delete;

  /// `e`'s request waits from now (appended: the list stays in order of waiting).
  void add(entry& e) {
    e.since_ = clock::now();
    e.prev_ = tail_;
    e.next_ = nullptr;
    (tail_ ? tail_->next_ : head_) = &e;
    tail_ = &e;
    e.linked_ = true;
    if (!sweeping_ && !closed_)
      sweep_at(e.since_ + after_);
  }

  /// `e`'s answer came (nothing when it is no longer in the list).
  void remove(entry& e) {
    if (!e.linked_)
      return;
    (e.prev_ ? e.prev_->next_ : head_) = e.next_;
    (e.next_ ? e.next_->prev_ : tail_) = e.prev_;
    e.prev_ = e.next_ = nullptr;
    e.linked_ = false;
  }

  /// The loop stopped for good: the list is emptied, and nothing is watched any more.
  void close() {
    closed_ = true;
    while (head_)
      remove(*head_);
  }

  /// Requests waiting and not yet watched (for tests).
  std::size_t size() const {
    std::size_t n = 0;
    for (auto* e = head_; e; e = e->next_)
      ++n;
    return n;
  }

private:
  void sweep(const boost::system::error_code& ec) {
    sweeping_ = false;
    if (ec || closed_)
      return;
    auto due = clock::now() - after_;
    while (head_ && head_->since_ <= due) {
      auto* e = head_;
      remove(*e);
      e->watch_now();
    }
    if (head_) // the oldest still waiting: next due `after` after it began waiting
      sweep_at(head_->since_ + after_);
  }

  void sweep_at(clock::time_point at) {
    sweeping_ = true;
    timer_.expires_at(at);
    timer_.async_wait([this](const boost::system::error_code& ec) { sweep(ec); });
  }

  boost::asio::steady_timer timer_;
  std::chrono::microseconds after_;
  entry* head_ = nullptr; // the oldest waiting
  entry* tail_ = nullptr;
  bool sweeping_ = false; // the timer is set
  bool closed_ = false;
};

} // namespace actorserve
