// The TorchScript backend: loads a scripted/traced module with libtorch and runs batches on the CPU
// or a CUDA device. Torch headers are included only here, in the aoti backend and in what the two
// share (../torch_tensors); it registers itself as "torchscript" when linked in. Exceptions from
// libtorch leave through model_backend::run/start as std::exception with libtorch's message, and
// the worker turns them into error values.
//
// On a GPU each instance has its own compute stream and copy stream, pinned host staging buffers
// and device buffers per in-flight slot (allocated once, grown only when a larger shape comes),
// pads batches up to a bucket (so warm-up covers every shape cuDNN and CUDA graphs see), runs the
// image preprocessing kernel, optionally replays a CUDA graph captured per bucket, and copies the
// outputs back asynchronously into pinned buffers; wait() blocks on the slot's event only.
#include <atomic>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include <torch/cuda.h>
#include <torch/script.h>

#if ACTORSERVE_WITH_CUDA
#include <ATen/Context.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "runtime/cuda/image_preprocess_cuda.hpp"
#endif

#include "runtime/backends/torch_tensors.hpp"
#include "runtime/image_preprocess.hpp"
#include "runtime/model_backend.hpp"

namespace actorserve {
namespace {

using torch_backend::first_line;
using torch_backend::to_host_tensor;
using torch_backend::to_torch;

/// The model's result as a list of tensors in the declared output order.
std::vector<at::Tensor> result_tensors(const model_config& model, const c10::IValue& result) {
  std::vector<at::Tensor> outs;
  if (result.isTensor()) {
    outs.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (auto& v : result.toTupleRef().elements())
      outs.push_back(v.toTensor());
  } else if (result.isTensorList()) {
    for (const at::Tensor& v : result.toTensorVector())
      outs.push_back(v);
  } else if (result.isGenericDict()) {
    auto dict = result.toGenericDict();
    for (auto& spec : model.outputs) {
      auto it = dict.find(spec.name);
      if (it == dict.end())
        throw std::runtime_error("model '" + model.name + "' returned a dict without output '"
                                 + spec.name + "'");
      outs.push_back(it->value().toTensor());
    }
  } else {
    throw std::runtime_error("model '" + model.name + "' returned " + result.tagKind()
                             + "; expected a tensor, a tuple/list of tensors or a dict");
  }
  return outs;
}

/// Which declared input the preprocessing applies to (-1: none).
int preprocess_index(const model_config& m) {
  if (!m.preprocess.enabled)
    return -1;
  for (std::size_t i = 0; i < m.inputs.size(); ++i)
    if (m.inputs[i].name == m.preprocess.input)
      return static_cast<int>(i);
  return -1;
}

class torchscript_backend;

#if ACTORSERVE_WITH_CUDA

/// One in-flight batch's buffers and events on the GPU.
struct gpu_slot {
  std::vector<at::Tensor> host_in;  // pinned bytes, per input
  std::vector<at::Tensor> dev_in;   // device bytes, per input
  std::vector<at::Tensor> host_out; // pinned, per output: [rows, ...] of the declared dtype
  at::cuda::CUDAEvent copied;       // the host-to-device copy of host_in finished
  at::cuda::CUDAEvent consumed;     // the compute that read dev_in finished
  at::cuda::CUDAEvent done;         // host_out holds the outputs
  std::atomic<bool> busy{false}; // set by start(), cleared by finish() on the completion thread
};

/// A captured CUDA graph for one bucket: replays read `inputs` and write `outputs`.
struct captured_graph {
  std::vector<at::Tensor> inputs;
  std::vector<at::Tensor> outputs;
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

#endif

class torchscript_backend : public model_backend {
public:
  explicit torchscript_backend(const backend_context& ctx)
    : model_(ctx.model), device_(torch::kCPU), warn_(ctx.warn), pre_(preprocess_index(model_)) {
    if (model_.path.empty())
      throw std::runtime_error("model '" + model_.name
                               + "': the torchscript backend needs \"path\" to a TorchScript file");
    device_ = torch_backend::device_of(model_, ctx.device);
    torch_backend::set_cpu_threads(model_, device_); // (runtime/config.hpp: cpu_threads)
    try {
      module_ = torch::jit::load(model_.path, device_);
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + model_.name + "': cannot load TorchScript file '"
                               + model_.path + "': " + first_line(e.what()));
    }
    module_.eval();
#if ACTORSERVE_WITH_CUDA
    if (device_.is_cuda())
      setup_gpu();
#endif
  }

  ~torchscript_backend() override {
#if ACTORSERVE_WITH_CUDA
    if (device_.is_cuda()) {
      try {
        compute_->synchronize();
        copy_->synchronize();
      } catch (...) {
        // a poisoned context: nothing left to wait for
      }
    }
#endif
  }

  std::vector<tensor> run(std::vector<tensor>& inputs) override {
    if (device_.is_cuda()) {
      return start(views_of(inputs))->wait();
    }
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    args.reserve(inputs.size());
    std::vector<std::vector<float>> transformed;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      auto& t = inputs[i];
      if (static_cast<int>(i) == pre_ && t.shape.size() == 4) {
        auto tf = image_tf(t.shape[1], t.shape[2]);
        transformed.emplace_back(static_cast<std::size_t>(t.shape[0]) * 3 * tf.out_h * tf.out_w);
        preprocess_images_cpu(t.data.data(), static_cast<int>(t.shape[0]), tf, image_dtype::f32,
                              transformed.back().data());
        args.emplace_back(torch::from_blob(transformed.back().data(),
                                           {t.shape[0], 3, tf.out_h, tf.out_w}, torch::kFloat));
        continue;
      }
      // Writable bytes (copied here if shared): a model may change its inputs in place.
      args.emplace_back(torch::from_blob(t.data.mutable_data(), t.shape,
                                         torch::TensorOptions().dtype(to_torch(t.dtype))));
    }
    std::vector<tensor> out;
    for (auto& o : result_tensors(model_, forward(std::move(args))))
      out.push_back(to_host_tensor(o.to(torch::kCPU).contiguous()));
    return out;
  }

#if ACTORSERVE_WITH_CUDA
  std::unique_ptr<pending_batch> start(const std::vector<batch_input>& inputs) override;
  uint32_t max_inflight() const override {
    return device_.is_cuda() ? static_cast<uint32_t>(slots_.size()) : 1;
  }

  /// Outputs of slot `k` once its event fired; frees the slot.
  std::vector<tensor> finish(std::size_t k, int64_t rows);
#endif

private:
  c10::IValue forward(std::vector<c10::IValue> args) {
    try {
      return module_.forward(std::move(args));
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + model_.name + "' failed: " + first_line(e.what()));
    }
  }

  image_transform image_tf(int64_t h, int64_t w) const {
    return make_image_transform(model_.preprocess, static_cast<int>(h), static_cast<int>(w));
  }

#if ACTORSERVE_WITH_CUDA
  void setup_gpu();
  /// Turns slot `k`'s device bytes into the model's inputs for a batch padded to `bucket` rows.
  std::vector<at::Tensor> device_inputs(gpu_slot& slot, const std::vector<batch_input>& inputs,
                                        int64_t rows, int64_t bucket, captured_graph* into);
  void capture(int64_t bucket, const std::vector<at::Tensor>& inputs);
  /// The smallest bucket (a batch size with a CUDA graph) that holds `rows`.
  int64_t bucket_for(int64_t rows) const;
  /// Stages the requests' bytes in slot's pinned memory (one copy), then one async copy per
  /// input to the device, on the copy stream.
  void stage_inputs(gpu_slot& slot, const std::vector<batch_input>& inputs, int64_t rows,
                    int64_t bucket);
  /// Runs the batch on the compute stream: its bucket's CUDA graph where it has one for these
  /// shapes, else eagerly (capturing the bucket's graph on its first batch).
  std::vector<at::Tensor> run_on_device(gpu_slot& slot, const std::vector<batch_input>& inputs,
                                        int64_t rows, int64_t bucket);
  /// Copies the outputs (without the padding rows, as declared) into slot's pinned memory.
  void copy_out(gpu_slot& slot, const std::vector<at::Tensor>& outs, int64_t rows,
                int64_t bucket);
#endif

  model_config model_;
  torch::Device device_;
  std::function<void(const std::string&)> warn_;
  int pre_; // the preprocessed input's index, or -1
  torch::jit::Module module_;
#if ACTORSERVE_WITH_CUDA
  std::optional<c10::cuda::CUDAStream> compute_, copy_;
  c10::ScalarType float_type_ = torch::kFloat; // floating inputs and weights (precision)
  std::vector<int64_t> buckets_;
  std::deque<gpu_slot> slots_;
  std::size_t next_slot_ = 0;
  std::map<int64_t, captured_graph> graphs_;
  std::set<int64_t> graph_failed_; // buckets that run eagerly because capture failed
#endif
};

#if ACTORSERVE_WITH_CUDA

/// A batch whose outputs arrive in a slot's pinned buffers.
class gpu_pending : public pending_batch {
public:
  gpu_pending(torchscript_backend* backend, std::size_t slot, int64_t rows)
    : backend_(backend), slot_(slot), rows_(rows) {}
  std::vector<tensor> wait() override { return backend_->finish(slot_, rows_); }

private:
  torchscript_backend* backend_;
  std::size_t slot_;
  int64_t rows_;
};

void torchscript_backend::setup_gpu() {
  c10::cuda::CUDAGuard guard(device_);
  compute_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_.index());
  copy_ = c10::cuda::getStreamFromPool(false, device_.index());
  auto& g = model_.gpu;
  float_type_ = g.precision == gpu_precision::fp16   ? torch::kHalf
                : g.precision == gpu_precision::bf16 ? torch::kBFloat16
                                                     : torch::kFloat;
  if (g.cudnn_benchmark)
    at::globalContext().setBenchmarkCuDNN(true); // process-wide, like PyTorch's flag
  if (float_type_ != torch::kFloat)
    module_.to(float_type_);
  if (g.channels_last)
    for (auto p : module_.parameters())
      if (p.dim() == 4)
        p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  for (auto b : model_.gpu_buckets())
    buckets_.push_back(b);
  for (uint32_t i = 0; i < std::max<uint32_t>(g.inflight_batches, 1); ++i)
    slots_.emplace_back();
}

std::vector<at::Tensor> torchscript_backend::device_inputs(gpu_slot& slot,
                                                           const std::vector<batch_input>& inputs,
                                                           int64_t rows, int64_t bucket,
                                                           captured_graph* into) {
  const bool batched = model_.max_batch_size > 0;
  std::vector<at::Tensor> out;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto& in = inputs[i];
    auto shape = in.shape;
    if (batched)
      shape[0] = bucket;
    auto bytes = static_cast<int64_t>(in.bytes());
    auto padded = batched && rows > 0 ? bytes / rows * bucket : bytes;
    auto raw = slot.dev_in[i].narrow(0, 0, padded);
    if (padded > bytes) // padding rows are zeros, not stale data
      raw.narrow(0, bytes, padded - bytes).zero_();
    if (static_cast<int>(i) == pre_ && shape.size() == 4) {
      auto tf = image_tf(shape[1], shape[2]);
      tf.out_nhwc = model_.gpu.channels_last ? 1 : 0;
      at::Tensor dst;
      std::vector<int64_t> want{bucket, 3, tf.out_h, tf.out_w};
      bool direct = into && into->inputs[i].sizes() == at::IntArrayRef(want)
                    && into->inputs[i].scalar_type() == float_type_
                    && into->inputs[i].is_contiguous(model_.gpu.channels_last
                                                       ? at::MemoryFormat::ChannelsLast
                                                       : at::MemoryFormat::Contiguous);
      if (direct) {
        dst = into->inputs[i]; // write straight into the graph's input
      } else {
        auto opts = at::TensorOptions().dtype(float_type_).device(device_);
        dst = model_.gpu.channels_last
                ? at::empty({bucket, 3, tf.out_h, tf.out_w}, opts.memory_format(
                                                                at::MemoryFormat::ChannelsLast))
                : at::empty({bucket, 3, tf.out_h, tf.out_w}, opts);
      }
      auto dtype = float_type_ == torch::kHalf       ? image_dtype::f16
                   : float_type_ == torch::kBFloat16 ? image_dtype::bf16
                                                     : image_dtype::f32;
      auto err = cuda::preprocess_images(static_cast<const uint8_t*>(raw.data_ptr()),
                                         static_cast<int>(bucket), tf, dtype, dst.data_ptr(),
                                         compute_->stream());
      if (!err.empty())
        throw std::runtime_error("model '" + model_.name + "': preprocessing kernel: " + err);
      out.push_back(direct ? at::Tensor() : dst);
      continue;
    }
    auto t = raw.view(to_torch(in.dtype)).view(shape);
    if (at::isFloatingType(t.scalar_type()) && t.scalar_type() != float_type_)
      t = t.to(float_type_);
    if (model_.gpu.channels_last && t.dim() == 4)
      t = t.contiguous(at::MemoryFormat::ChannelsLast);
    out.push_back(t);
  }
  return out;
}

void torchscript_backend::capture(int64_t bucket, const std::vector<at::Tensor>& inputs) {
  captured_graph cg;
  for (auto& t : inputs)
    cg.inputs.push_back(t.clone(at::MemoryFormat::Preserve));
  auto args = [&] { return std::vector<c10::IValue>(cg.inputs.begin(), cg.inputs.end()); };
  // A few eager runs first: TorchScript's profiling executor optimizes on its first calls, and
  // nothing may compile or allocate for the first time during capture.
  for (int i = 0; i < 3; ++i)
    forward(args());
  compute_->synchronize();
  cg.graph = std::make_unique<at::cuda::CUDAGraph>();
  cg.graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
  try {
    cg.outputs = result_tensors(model_, forward(args()));
    cg.graph->capture_end();
  } catch (...) {
    try {
      cg.graph->capture_end();
    } catch (...) {
      // the capture is already broken; the graph is dropped below
    }
    throw;
  }
  graphs_.emplace(bucket, std::move(cg));
}

int64_t torchscript_backend::bucket_for(int64_t rows) const {
  if (model_.max_batch_size > 0)
    for (auto b : buckets_)
      if (b >= rows)
        return b;
  return rows;
}

void torchscript_backend::stage_inputs(gpu_slot& slot, const std::vector<batch_input>& inputs,
                                       int64_t rows, int64_t bucket) {
  const bool batched = model_.max_batch_size > 0;
  slot.host_in.resize(inputs.size());
  slot.dev_in.resize(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto bytes = static_cast<int64_t>(inputs[i].bytes());
    auto need = batched && rows > 0 ? bytes / rows * bucket : bytes;
    slot.copied.synchronize(); // the last copy out of host_in finished
    if (!slot.host_in[i].defined() || slot.host_in[i].numel() < need) {
      slot.consumed.synchronize(); // dev_in is no longer read
      auto cap = std::max<int64_t>(need, batched && rows > 0
                                           ? bytes / rows * static_cast<int64_t>(
                                               std::max<uint32_t>(model_.max_batch_size, 1))
                                           : need);
      slot.host_in[i] = at::empty({cap}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
      slot.dev_in[i] = at::empty({cap}, at::TensorOptions().dtype(at::kByte).device(device_));
    }
    // A large batch (ResNet-50 at 128: 19 MB) is gathered by several threads: this copy is the
    // worker thread's main cost per batch, and it must end before the GPU finishes the last one.
    inputs[i].copy_to(static_cast<uint8_t*>(slot.host_in[i].data_ptr()), 4);
  }
  c10::cuda::CUDAStreamGuard on_copy(*copy_);
  slot.consumed.block(*copy_);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto bytes = static_cast<int64_t>(inputs[i].bytes());
    slot.dev_in[i].narrow(0, 0, bytes).copy_(slot.host_in[i].narrow(0, 0, bytes), true);
  }
  slot.copied.record(*copy_);
}

std::vector<at::Tensor> torchscript_backend::run_on_device(gpu_slot& slot,
                                                           const std::vector<batch_input>& inputs,
                                                           int64_t rows, int64_t bucket) {
  auto want_graph = model_.gpu.cuda_graphs && model_.max_batch_size > 0
                    && !graph_failed_.count(bucket);
  auto git = graphs_.find(bucket);
  captured_graph* graph = want_graph && git != graphs_.end() ? &git->second : nullptr;
  auto args = device_inputs(slot, inputs, rows, bucket, graph);
  if (graph) { // the graph was captured for one shape; another one runs eagerly
    for (std::size_t i = 0; i < args.size(); ++i)
      if (args[i].defined() && args[i].sizes() != graph->inputs[i].sizes())
        graph = nullptr;
    if (!graph)
      args = device_inputs(slot, inputs, rows, bucket, nullptr);
  }
  if (graph) {
    for (std::size_t i = 0; i < args.size(); ++i)
      if (args[i].defined()) // (undefined: preprocessed straight into the graph's input)
        graph->inputs[i].copy_(args[i]);
    graph->graph->replay();
    return graph->outputs;
  }
  auto outs = result_tensors(model_, forward(std::vector<c10::IValue>(args.begin(), args.end())));
  if (want_graph && git == graphs_.end()) {
    try {
      capture(bucket, args); // the first batch of a bucket, which warm-up runs
    } catch (const std::exception& e) {
      graph_failed_.insert(bucket);
      if (warn_)
        warn_("CUDA graph capture failed for batch bucket " + std::to_string(bucket)
              + "; that bucket runs eagerly: " + first_line(e.what()));
    }
  }
  return outs;
}

void torchscript_backend::copy_out(gpu_slot& slot, const std::vector<at::Tensor>& outs,
                                   int64_t rows, int64_t bucket) {
  const bool batched = model_.max_batch_size > 0;
  slot.host_out.resize(outs.size());
  for (std::size_t o = 0; o < outs.size(); ++o) {
    auto t = batched && outs[o].dim() > 0 && outs[o].size(0) == bucket ? outs[o].narrow(0, 0, rows)
                                                                        : outs[o];
    if (o < model_.outputs.size()) {
      auto declared = to_torch(model_.outputs[o].dtype);
      if (t.scalar_type() != declared)
        t = t.to(declared);
    }
    auto& host = slot.host_out[o];
    if (!host.defined() || host.sizes() != t.sizes() || host.scalar_type() != t.scalar_type())
      host = at::empty(t.sizes(), at::TensorOptions().dtype(t.scalar_type()).pinned_memory(true));
    host.copy_(t, /*non_blocking=*/true);
  }
}

std::unique_ptr<pending_batch>
torchscript_backend::start(const std::vector<batch_input>& inputs) {
  if (!device_.is_cuda())
    return model_backend::start(inputs);
  c10::InferenceMode mode;
  c10::cuda::CUDAGuard device_guard(device_);
  auto k = next_slot_;
  auto& slot = slots_[k];
  if (slot.busy)
    throw std::logic_error("model '" + model_.name + "': more batches started than "
                           + std::to_string(slots_.size()) + " in flight");
  int64_t rows = model_.max_batch_size > 0 && !inputs.empty() ? inputs.front().shape.at(0) : 1;
  int64_t bucket = bucket_for(rows);
  stage_inputs(slot, inputs, rows, bucket);
  c10::cuda::CUDAStreamGuard on_compute(*compute_);
  slot.copied.block(*compute_);
  auto outs = run_on_device(slot, inputs, rows, bucket);
  slot.consumed.record(*compute_);
  copy_out(slot, outs, rows, bucket);
  slot.done.record(*compute_);
  slot.busy = true;
  next_slot_ = (next_slot_ + 1) % slots_.size();
  return std::make_unique<gpu_pending>(this, k, rows);
}

std::vector<tensor> torchscript_backend::finish(std::size_t k, int64_t rows) {
  auto& slot = slots_[k];
  struct release {
    gpu_slot& s;
    ~release() { s.busy = false; }
  } release_on_exit{slot};
  try {
    slot.done.synchronize();
  } catch (const std::exception& e) {
    throw std::runtime_error("model '" + model_.name + "' failed on " + device_.str() + ": "
                             + first_line(e.what()));
  }
  std::vector<tensor> out;
  for (auto& host : slot.host_out)
    out.push_back(to_host_tensor(host));
  return out;
}

#endif

backend_registrar registrar{"torchscript", [](const backend_context& ctx) {
                              return std::make_unique<torchscript_backend>(ctx);
                            }};

struct cuda_counter {
  cuda_counter() {
    backend_registry::global().set_cuda_device_counter(
      [] { return static_cast<int>(torch::cuda::device_count()); });
  }
} counter;

} // namespace
} // namespace actorserve
