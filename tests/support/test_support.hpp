// Small builders shared by the unit tests.
#pragma once

#include <cstring>
#include <vector>

#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace actorserve::test {

inline tensor fp32(std::string name, std::vector<int64_t> shape, const std::vector<float>& values) {
  tensor t;
  t.name = std::move(name);
  t.dtype = datatype::FP32;
  t.shape = std::move(shape);
  t.data.resize(values.size() * sizeof(float));
  std::memcpy(t.data.mutable_data(), values.data(), t.data.size());
  return t;
}

inline std::vector<float> floats(const tensor& t) {
  std::vector<float> out(t.data.size() / sizeof(float));
  std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

/// A model "m" taking "x" FP32 [batch, 2] and returning "y" FP32 [batch, 2].
inline model_config small_model(uint32_t max_batch_size = 8) {
  model_config m;
  m.name = "m";
  m.backend = "scale";
  m.max_batch_size = max_batch_size;
  m.inputs = {tensor_spec{"x", datatype::FP32, {2}}};
  m.outputs = {tensor_spec{"y", datatype::FP32, {2}}};
  return m;
}

inline infer_request request_with_rows(int64_t rows, float base = 0) {
  infer_request r;
  r.model = "m";
  std::vector<float> v;
  for (int64_t i = 0; i < rows * 2; ++i)
    v.push_back(base + static_cast<float>(i));
  r.inputs.push_back(fp32("x", {rows, 2}, v));
  return r;
}

/// Restart settings without jitter (deterministic delays): `max_restarts` within `period_s`,
/// backoff from `initial_ms` doubling up to `max_ms`.
inline restart_config restart_settings(uint32_t max_restarts, uint32_t period_s,
                                       uint32_t initial_ms, uint32_t max_ms = 10'000) {
  restart_config r;
  r.max_restarts = max_restarts;
  r.period_s = period_s;
  r.backoff_initial_ms = initial_ms;
  r.backoff_max_ms = max_ms;
  r.backoff_factor = 2.0;
  r.backoff_jitter = 0.0;
  return r;
}

} // namespace actorserve::test
