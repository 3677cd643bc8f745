// A model's response cache (opt-in: models[].response_cache_bytes): answers by the exact
// request that produced them, so that a request equal to an earlier one (the same inputs —
// names, datatypes, shapes and bytes — and the same requested outputs) is answered without
// reaching the model. For models whose outputs depend on their inputs alone, as NVIDIA Triton's
// response cache assumes. Bounded in bytes, least recently used out first; entries hold copies
// of their tensors (never slices of a batch's buffer, which would keep the whole batch alive).
// Keys are compared byte for byte: a hash collision, chosen or not, is a miss, never a wrong
// answer. Thread-safe (every HTTP I/O thread looks up and inserts).
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/tensor.hpp"

namespace actorserve {

class response_cache {
public:
  explicit response_cache(uint64_t max_bytes);

  /// A request's inputs and requested outputs (empty: all), hashed once.
  struct key {
    uint64_t hash = 0;
    std::vector<tensor> inputs;       // shares their bytes: no copy
    std::vector<std::string> outputs;
  };
  static key make_key(const std::vector<tensor>& inputs, const std::vector<std::string>& outputs);

  /// The answer stored for `k` (its tensors share the cache's bytes), marked most recently used.
  std::optional<std::vector<tensor>> find(const key& k);

  /// Stores a copy of `answer` for `k`, evicting the least recently used entries to stay within
  /// the bound. An answer larger than the whole bound, or one already stored, is not stored.
  void insert(const key& k, const std::vector<tensor>& answer);

  /// Forgets every answer (the model was unloaded or loaded again).
  void clear();

  uint64_t bytes() const;
  std::size_t entries() const;
  uint64_t evictions() const;

private:
  struct entry {
    key k;
    std::vector<tensor> answer;
    uint64_t bytes = 0;
  };
  using lru_list = std::list<entry>;

  lru_list::iterator find_locked(const key& k);

  const uint64_t max_bytes_;
  mutable std::mutex mutex_;
  lru_list lru_; // most recently used first
  std::unordered_multimap<uint64_t, lru_list::iterator> index_;
  uint64_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

} // namespace actorserve
