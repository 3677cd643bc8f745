// A stage written outside actorserve's tree and loaded as a plugin: "topk" turns a row of scores
// (a classifier's logits) into its k highest, as indices and values (softmax probabilities when
// asked), so a pipeline can answer with classes instead of 1,000 numbers.
//
//   { "stage": "topk", "parameters": { "k": 5, "softmax": true },
//     "inputs": { "scores": "logits" }, "outputs": { "indices": "top", "values": "p" } }
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "actors/item_stage.hpp"
#include "runtime/error.hpp"
#include "runtime/plugin.hpp"
#include "runtime/stage.hpp"

using namespace actorserve;

namespace {

struct topk_settings {
  int64_t k = 5;
  bool softmax = false;
  uint32_t threads = 1;
};

topk_settings read(stage_parameters& p) {
  topk_settings s;
  s.k = p.integer("k", 5, 1, 100'000);
  s.softmax = p.boolean("softmax", false);
  s.threads = static_cast<uint32_t>(p.integer("threads", 1, 1, 64));
  return s;
}

std::vector<tensor_spec> outputs(const topk_settings& s) {
  return {{"indices", datatype::INT64, {s.k}}, {"values", datatype::FP32, {s.k}}};
}

stage_signature describe(stage_parameters& p) {
  auto s = read(p);
  return {{{"scores", datatype::FP32, {-1}}}, outputs(s)};
}

caf::expected<item_parts> top_k(const topk_settings& s, const stage_input& item) {
  auto& t = item.tensors.at(0);
  auto n = static_cast<std::size_t>(t.data.size() / 4);
  if (n < static_cast<std::size_t>(s.k))
    return make_error(errc::invalid_input, "a row of " + std::to_string(n)
                                             + " scores has no top " + std::to_string(s.k));
  std::vector<float> x(n);
  std::memcpy(x.data(), t.data.data(), n * 4);
  if (s.softmax) {
    float top = *std::max_element(x.begin(), x.end());
    double sum = 0;
    for (auto& v : x)
      sum += (v = std::exp(v - top));
    for (auto& v : x)
      v = static_cast<float>(v / sum);
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + s.k, order.end(),
                    [&](int64_t a, int64_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  item_parts parts(2);
  parts[0].resize(static_cast<std::size_t>(s.k) * 8);
  parts[1].resize(static_cast<std::size_t>(s.k) * 4);
  for (int64_t i = 0; i < s.k; ++i) {
    std::memcpy(parts[0].data() + i * 8, &order[i], 8);
    std::memcpy(parts[1].data() + i * 4, &x[order[i]], 4);
  }
  return parts;
}

stage_actor spawn(caf::actor_system& sys, stage_context& ctx) {
  auto s = read(ctx.parameters);
  item_stage_spec spec;
  spec.name = ctx.name;
  spec.threads = s.threads;
  spec.outputs = outputs(s);
  spec.work = [s](const stage_input& item) { return top_k(s, item); };
  return spawn_item_stage(sys, std::move(spec));
}

void register_topk() {
  stage_registry::global().add("topk", {describe, spawn});
}

} // namespace

ACTORSERVE_PLUGIN(register_topk)
