// A shared, thread-safe slot for an actor handle that is replaced when its actor restarts: the
// HTTP threads read the current gateway from one, workers their model's current batcher.
#pragma once

#include <mutex>

namespace actorserve {

template <class Handle>
class handle_cell {
public:
  Handle get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return handle_;
  }
  void set(Handle h) {
    std::lock_guard<std::mutex> guard{mtx_};
    handle_ = std::move(h);
  }

private:
  mutable std::mutex mtx_;
  Handle handle_;
};

} // namespace actorserve
