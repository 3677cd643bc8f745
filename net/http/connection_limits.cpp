#include "net/http/connection_limits.hpp"

namespace actorserve {

std::optional<std::string> connection_limits::admit(const std::string& client) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (total_ > 0 && open_ >= total_)
    return "the server holds " + std::to_string(open_) + " connections, its limit "
           "(http.max_connections)";
  auto& mine = by_client_[client];
  if (per_client_ > 0 && mine >= per_client_)
    return "client " + client + " holds " + std::to_string(mine) + " connections, the limit "
           "for one address (http.max_connections_per_client)";
  ++mine;
  ++open_;
  return std::nullopt;
}

void connection_limits::release(const std::string& client) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = by_client_.find(client);
  if (it == by_client_.end())
    return;
  --open_;
  if (--it->second == 0)
    by_client_.erase(it);
}

uint32_t connection_limits::open() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return open_;
}

} // namespace actorserve
