// A stand-in for a model on a GPU, for measuring the serving path on machines without one
// (`"backend": "simulated_gpu"`; examples/bench/sim_device.sh). It does what the TorchScript
// backend's GPU path does on the host, and only waits where a device would compute:
//  - start() copies the batch's inputs into a staging buffer of its in-flight slot, reused across
//    batches, with the same multi-threaded gather as the pinned staging of the GPU path, queues
//    the batch on its "device" thread and returns at once;
//  - the device runs one batch after another, each for delay_us + delay_per_row_us per row, rows
//    rounded up to row_granule (a CUDA-graph bucket);
//  - wait() returns the outputs once the device is done.
// Outputs are the declared FP32 outputs; element 0 of each row is the row's first input byte (so
// answers can be checked), the rest zero. Parameters: delay_us (200), delay_per_row_us (70),
// row_granule (16), inflight (2), staging_threads (4).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "runtime/model_backend.hpp"

namespace {

using namespace actorserve;
using clock_type = std::chrono::steady_clock;

class simulated_gpu_backend : public model_backend {
public:
  explicit simulated_gpu_backend(const backend_context& ctx) : model_(ctx.model) {
    delay_us_ = std::stod(backend_parameter(model_, "delay_us", "200"));
    per_row_us_ = std::stod(backend_parameter(model_, "delay_per_row_us", "70"));
    granule_ = std::max<int64_t>(std::stoll(backend_parameter(model_, "row_granule", "16")), 1);
    inflight_ = std::max(std::stoi(backend_parameter(model_, "inflight", "2")), 1);
    threads_ = static_cast<unsigned>(
      std::max(std::stoi(backend_parameter(model_, "staging_threads", "4")), 1));
    if (model_.max_batch_size == 0)
      throw std::runtime_error("model '" + model_.name
                               + "': the simulated_gpu backend needs max_batch_size > 0");
    for (auto& o : model_.outputs) {
      if (o.dtype != datatype::FP32)
        throw std::runtime_error("model '" + model_.name + "': the simulated_gpu backend writes "
                                 "FP32 outputs only, output '" + o.name + "' is "
                                 + std::string(to_string(o.dtype)));
      for (auto d : o.dims)
        if (d < 1)
          throw std::runtime_error("model '" + model_.name + "': output '" + o.name
                                   + "' needs fixed dims for the simulated_gpu backend");
    }
    slots_.resize(static_cast<std::size_t>(inflight_));
    device_ = std::thread([this] { device_loop(); });
  }

  ~simulated_gpu_backend() override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    cv_.notify_all();
    device_.join();
  }

  uint32_t max_inflight() const override { return static_cast<uint32_t>(inflight_); }

  std::unique_ptr<pending_batch> start(const std::vector<batch_input>& inputs) override {
    auto job = std::make_shared<device_job>();
    auto& slot = slots_[next_slot_++ % slots_.size()]; // the worker holds <= inflight batches
    slot.resize(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      slot[i].resize(inputs[i].bytes());
      inputs[i].copy_to(slot[i].data(), threads_);
    }
    job->rows = inputs.empty() || inputs[0].shape.empty() ? 1 : inputs[0].shape[0];
    job->row_bytes = job->rows > 0 ? slot[0].size() / static_cast<std::size_t>(job->rows) : 0;
    job->staged = &slot[0];
    {
      std::lock_guard<std::mutex> guard{mtx_};
      queue_.push_back(job);
    }
    cv_.notify_all();
    return std::make_unique<pending>(*this, std::move(job));
  }

  std::vector<tensor> run(std::vector<tensor>& inputs) override {
    return start(views_of(inputs))->wait();
  }

private:
  struct device_job {
    int64_t rows = 0;
    std::size_t row_bytes = 0;
    const std::vector<uint8_t>* staged = nullptr; // input 0 in its slot
    std::vector<tensor> outputs;
    bool done = false;
  };

  class pending : public pending_batch {
  public:
    pending(simulated_gpu_backend& b, std::shared_ptr<device_job> j) : b_(b), job_(std::move(j)) {}
    std::vector<tensor> wait() override {
      std::unique_lock<std::mutex> lock{b_.mtx_};
      b_.cv_.wait(lock, [this] { return job_->done; });
      return std::move(job_->outputs);
    }

  private:
    simulated_gpu_backend& b_;
    std::shared_ptr<device_job> job_;
  };

  void device_loop() {
    for (;;) {
      std::shared_ptr<device_job> job;
      {
        std::unique_lock<std::mutex> lock{mtx_};
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty())
          return;
        job = queue_.front();
      }
      auto padded = (job->rows + granule_ - 1) / granule_ * granule_;
      auto busy = std::chrono::duration<double, std::micro>(delay_us_ + per_row_us_ * padded);
      std::this_thread::sleep_until(clock_type::now()
                                    + std::chrono::duration_cast<clock_type::duration>(busy));
      std::vector<tensor> outputs;
      for (auto& spec : model_.outputs) {
        tensor t;
        t.name = spec.name;
        t.dtype = datatype::FP32;
        t.shape = spec.dims;
        t.shape.insert(t.shape.begin(), job->rows);
        int64_t per_row = 1;
        for (auto d : spec.dims)
          per_row *= d;
        t.data.assign(static_cast<std::size_t>(job->rows * per_row) * sizeof(float), 0);
        uint8_t* dst = t.data.mutable_data();
        for (int64_t r = 0; r < job->rows && job->row_bytes > 0; ++r) {
          auto v = static_cast<float>((*job->staged)[static_cast<std::size_t>(r) * job->row_bytes]);
          std::memcpy(dst + static_cast<std::size_t>(r * per_row) * sizeof v, &v,
                      sizeof v);
        }
        outputs.push_back(std::move(t));
      }
      {
        std::lock_guard<std::mutex> guard{mtx_};
        job->outputs = std::move(outputs);
        job->done = true;
        queue_.pop_front();
      }
      cv_.notify_all();
    }
  }

  model_config model_;
  double delay_us_ = 0;
  double per_row_us_ = 0;
  int64_t granule_ = 16;
  int inflight_ = 2;
  unsigned threads_ = 4;
  std::vector<std::vector<std::vector<uint8_t>>> slots_; // per in-flight slot, per input
  std::size_t next_slot_ = 0;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<device_job>> queue_;
  bool stop_ = false;
  std::thread device_; // last: started after everything it uses
};

backend_registrar registrar{"simulated_gpu", [](const backend_context& ctx) {
                              return std::make_unique<simulated_gpu_backend>(ctx);
                            }};

} // namespace
