// A user-written backend, compiled into actorserve and chosen by `"backend": "scale"` in the
// deployment file. It computes y = x * factor + bias element-wise on FP32 tensors (one output per
// input, in order), with an optional artificial delay per batch to imitate a slower model.
// Copy this file to write your own: implement model_backend::run, register a factory by name.
// With the parameter "inflight" > 1 it also shows the asynchronous side of the interface, as a GPU
// backend uses it: start() takes the batch and returns at once, wait() (which the worker calls on
// its completion thread) delivers the outputs, and the worker hands it up to "inflight" batches.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "runtime/model_backend.hpp"

namespace {

using namespace actorserve;

class scale_backend : public model_backend {
public:
  explicit scale_backend(const backend_context& ctx) : model_(ctx.model) {
    factor_ = std::stof(backend_parameter(model_, "factor", "1"));
    bias_ = std::stof(backend_parameter(model_, "bias", "0"));
    delay_ = std::chrono::microseconds(std::stoll(backend_parameter(model_, "delay_us", "0")));
    inflight_ = static_cast<uint32_t>(std::stoul(backend_parameter(model_, "inflight", "1")));
    if (model_.inputs.size() != model_.outputs.size())
      throw std::runtime_error("model '" + model_.name
                               + "': the scale backend needs as many outputs as inputs");
    for (auto& s : model_.inputs)
      if (s.dtype != datatype::FP32)
        throw std::runtime_error("model '" + model_.name + "': the scale backend supports FP32 "
                                 "inputs only, input '" + s.name + "' is "
                                 + std::string(to_string(s.dtype)));
  }

  uint32_t max_inflight() const override { return std::max<uint32_t>(inflight_, 1); }

  std::unique_ptr<pending_batch> start(const std::vector<batch_input>& inputs) override {
    if (inflight_ <= 1)
      return model_backend::start(inputs);
    std::vector<tensor> batch; // the views are only valid until wait(): take the data now
    for (auto& in : inputs)
      batch.push_back(in.concatenate());
    return std::make_unique<deferred>(*this, std::move(batch));
  }

  std::vector<tensor> run(std::vector<tensor>& inputs) override {
    if (delay_.count() > 0)
      std::this_thread::sleep_for(delay_); // a worker runs on its own thread: blocking is fine
    std::vector<tensor> out;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      tensor t;
      t.name = model_.outputs[i].name;
      t.dtype = datatype::FP32;
      t.shape = inputs[i].shape;
      t.data.resize(inputs[i].data.size());
      const uint8_t* src = inputs[i].data.data();
      uint8_t* dst = t.data.mutable_data();
      auto n = inputs[i].data.size() / sizeof(float);
      for (std::size_t k = 0; k < n; ++k) {
        float x;
        std::memcpy(&x, src + k * sizeof x, sizeof x);
        float y = x * factor_ + bias_;
        std::memcpy(dst + k * sizeof y, &y, sizeof y);
      }
      out.push_back(std::move(t));
    }
    return out;
  }

private:
  /// A batch computed when its outputs are asked for (a device would be computing meanwhile).
  class deferred : public pending_batch {
  public:
    deferred(scale_backend& b, std::vector<tensor> in) : backend_(b), in_(std::move(in)) {}
    std::vector<tensor> wait() override { return backend_.run(in_); }

  private:
    scale_backend& backend_;
    std::vector<tensor> in_;
  };

  model_config model_;
  uint32_t inflight_ = 1;
  float factor_ = 1;
  float bias_ = 0;
  std::chrono::microseconds delay_{0};
};

backend_registrar registrar{"scale", [](const backend_context& ctx) {
                              return std::make_unique<scale_backend>(ctx);
                            }};

} // namespace
