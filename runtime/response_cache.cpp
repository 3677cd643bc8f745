#include "runtime/response_cache.hpp"

#include <cstring>
#include <functional>
#include <random>
#include <string_view>

namespace actorserve {

namespace {

/// Per process: where keys land is not predictable from outside.
const uint64_t hash_seed = std::random_device{}() * 0x9E3779B97F4A7C15ull + std::random_device{}();

void mix(uint64_t& h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
}

uint64_t hash_bytes(const void* p, std::size_t n) {
  return std::hash<std::string_view>{}(std::string_view(static_cast<const char*>(p), n));
}

bool same_tensor(const tensor& a, const tensor& b) {
  return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape
         && a.data.size() == b.data.size()
         && (a.data.data() == b.data.data()
             || std::memcmp(a.data.data(), b.data.data(), a.data.size()) == 0);
}

/// A tensor whose bytes are its own (not a view or slice of a larger buffer).
tensor own_copy(const tensor& t) {
  tensor c;
  c.name = t.name;
  c.dtype = t.dtype;
  c.shape = t.shape;
  c.data.assign(t.data.begin(), t.data.end());
  return c;
}

uint64_t tensor_bytes(const tensor& t) {
  return t.data.size() + t.name.size() + t.shape.size() * sizeof(int64_t) + sizeof(tensor);
}

} // namespace

response_cache::response_cache(uint64_t max_bytes) : max_bytes_(max_bytes) {
}

response_cache::key response_cache::make_key(const std::vector<tensor>& inputs,
                                             const std::vector<std::string>& outputs) {
  key k;
  k.hash = hash_seed;
  for (auto& t : inputs) {
    mix(k.hash, hash_bytes(t.name.data(), t.name.size()));
    mix(k.hash, static_cast<uint64_t>(t.dtype));
    for (auto d : t.shape)
      mix(k.hash, static_cast<uint64_t>(d));
    mix(k.hash, hash_bytes(t.data.data(), t.data.size()));
  }
  mix(k.hash, outputs.size());
  for (auto& o : outputs)
    mix(k.hash, hash_bytes(o.data(), o.size()));
  k.inputs = inputs;
  k.outputs = outputs;
  return k;
}

response_cache::lru_list::iterator response_cache::find_locked(const key& k) {
  auto [first, last] = index_.equal_range(k.hash);
  for (auto it = first; it != last; ++it) {
    auto& e = it->second->k;
    if (e.outputs != k.outputs || e.inputs.size() != k.inputs.size())
      continue;
    bool same = true;
    for (std::size_t i = 0; same && i < e.inputs.size(); ++i)
      same = same_tensor(e.inputs[i], k.inputs[i]);
    if (same)
      return it->second;
  }
  return lru_.end();
}

std::optional<std::vector<tensor>> response_cache::find(const key& k) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto it = find_locked(k);
  if (it == lru_.end())
    return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it);
  return it->answer;
}

void response_cache::insert(const key& k, const std::vector<tensor>& answer) {
  entry e;
  e.bytes = sizeof(entry) + 64; // (the list and index nodes)
  for (auto& t : k.inputs) {
    e.k.inputs.push_back(own_copy(t));
    e.bytes += tensor_bytes(t);
  }
  for (auto& o : k.outputs)
    e.bytes += o.size() + sizeof(std::string);
  for (auto& t : answer) {
    e.answer.push_back(own_copy(t));
    e.bytes += tensor_bytes(t);
  }
  if (e.bytes > max_bytes_)
    return;
  e.k.hash = k.hash;
  e.k.outputs = k.outputs;
  std::lock_guard<std::mutex> guard{mutex_};
  if (find_locked(k) != lru_.end())
    return; // (two equal requests missed at once: the first answer stays)
  while (bytes_ + e.bytes > max_bytes_ && !lru_.empty()) {
    auto& victim = lru_.back();
    auto [first, last] = index_.equal_range(victim.k.hash);
    for (auto it = first; it != last; ++it)
      if (&*it->second == &victim) {
        index_.erase(it);
        break;
      }
    bytes_ -= victim.bytes;
    lru_.pop_back();
    ++evictions_;
  }
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  index_.emplace(k.hash, lru_.begin());
}

void response_cache::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

uint64_t response_cache::bytes() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return bytes_;
}

std::size_t response_cache::entries() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return lru_.size();
}

uint64_t response_cache::evictions() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return evictions_;
}

} // namespace actorserve
