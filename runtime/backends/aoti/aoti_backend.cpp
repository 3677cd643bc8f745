// The AOTInductor backend ("aoti"): a torch.export + AOTInductor package (.pt2, made with
// torch._inductor.aoti_compile_and_package; examples/models/make_models.py --aoti) loaded with
// libtorch's AOTIModelPackageLoader and run on the worker's device. TorchScript's successor for
// C++ deployment: the model is compiled ahead of time into a shared library in the package.
//
// At load the package is checked against the model's declaration, so that a mismatch stops the
// worker with an error naming it rather than failing requests: the device it was compiled for,
// the batch range it was compiled for (when the package records it: make_models.py writes
// actorserve.batch_min/max into its metadata) against max_batch_size, the inputs' dims (when it
// records them: actorserve.inputs), and one run on zeros of the declared inputs whose outputs must
// have the declared count, datatypes and dims. A batch smaller
// than the package's smallest is padded with zero rows to it (the extra rows' outputs dropped); a
// batch larger than max_batch_size never reaches a backend (the batcher's bound).
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/types.h>

#if ACTORSERVE_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "runtime/backends/torch_tensors.hpp"
#include "runtime/model_backend.hpp"

namespace actorserve {
namespace {

using namespace torch_backend;

/// A metadata entry of the package as an integer, or `fallback` when it has none.
int64_t metadata_int(const std::unordered_map<std::string, std::string>& md,
                     const std::string& key, int64_t fallback) {
  auto it = md.find(key);
  return it == md.end() ? fallback : std::stoll(it->second);
}

/// Loads a package, one at a time in the process: libtorch's loader (torch 2.11) parses each
/// package's JSON files into one function-static object (load_json_file's `json_obj` in
/// model_package_loader.cpp), so two packages loaded at once, as a node's workers load them, can
/// read each other's metadata (a package for batch 1..64 was once seen as 8..8) or corrupt it.
std::unique_ptr<torch::inductor::AOTIModelPackageLoader> load_package(const std::string& path,
                                                                      int device_index) {
  static std::mutex loading;
  std::lock_guard<std::mutex> one_at_a_time{loading};
  return std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1,
                                                                   device_index);
}

/// The parts of `text` between `separator`s (one part, `text`, when there is none).
std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts(1);
  for (char c : text)
    if (c == separator)
      parts.emplace_back();
    else
      parts.back() += c;
  return parts;
}

class aoti_backend : public model_backend {
public:
  explicit aoti_backend(const backend_context& ctx)
    : model_(ctx.model), device_(device_of(ctx.model, ctx.device)) {
    if (model_.path.empty())
      throw std::runtime_error("model '" + model_.name
                               + "': the aoti backend needs \"path\" to a .pt2 package");
    if (model_.preprocess.enabled)
      throw std::runtime_error("model '" + model_.name + "': the aoti backend does not run "
                               "models[].preprocess; put the preprocess stage before it in a "
                               "pipeline (config/stages.md)");
    set_cpu_threads(model_, device_);
    try {
      loader_ = load_package(model_.path, device_.is_cuda() ? device_.index() : -1);
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + model_.name + "': cannot load AOTInductor package '"
                               + model_.path + "': " + first_line(e.what()));
    }
    auto md = loader_->get_metadata();
    check_device(md);
    batch_min_ = metadata_int(md, "actorserve.batch_min", 1);
    batch_max_ = metadata_int(md, "actorserve.batch_max", std::numeric_limits<int64_t>::max());
    if (model_.max_batch_size > 0 && static_cast<int64_t>(model_.max_batch_size) > batch_max_)
      throw std::runtime_error(
        "model '" + model_.name + "': max_batch_size " + std::to_string(model_.max_batch_size)
        + " exceeds the batch sizes the package was compiled for (" + std::to_string(batch_min_)
        + ".." + std::to_string(batch_max_) + "); export it with a larger batch Dim, or lower "
        "max_batch_size");
    check_declared_inputs(md);
    check_signature();
  }

  std::vector<tensor> run(std::vector<tensor>& inputs) override {
    c10::InferenceMode guard;
    int64_t rows = model_.max_batch_size > 0 && !inputs.empty() && !inputs[0].shape.empty()
                     ? inputs[0].shape[0]
                     : -1;
    std::vector<at::Tensor> args;
    args.reserve(inputs.size());
    for (auto& t : inputs) {
      // Writable bytes (copied here if shared): compiled kernels may reuse their inputs' memory.
      auto host = torch::from_blob(t.data.mutable_data(), t.shape,
                                   torch::TensorOptions().dtype(to_torch(t.dtype)));
      if (rows >= 0 && rows < batch_min_) // (padded with zero rows to the smallest compiled batch)
        host = torch::cat({host, torch::zeros(padding_shape(t.shape, batch_min_ - rows),
                                              host.options())});
      args.push_back(device_.is_cpu() ? host : host.to(device_, /*non_blocking=*/false));
    }
    auto outs = call(args);
    std::vector<tensor> out;
    out.reserve(outs.size());
    for (auto& o : outs) // (a padded batch: its own rows only, cut before they are copied)
      out.push_back(to_host_tensor(
        (rows >= 0 && rows < batch_min_ ? o.narrow(0, 0, rows) : o).to(torch::kCPU).contiguous()));
    return out;
  }

private:
  static std::vector<int64_t> padding_shape(std::vector<int64_t> shape, int64_t rows) {
    shape[0] = rows;
    return shape;
  }

  std::vector<at::Tensor> call(const std::vector<at::Tensor>& args) {
    try {
#if ACTORSERVE_WITH_CUDA
      if (device_.is_cuda()) {
        c10::cuda::CUDAGuard device_guard(device_);
        auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
        return loader_->run(args, stream.stream());
      }
#endif
      return loader_->run(args);
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + model_.name + "' failed: " + first_line(e.what()));
    }
  }

  /// The package runs on the kind of device it was compiled for.
  void check_device(const std::unordered_map<std::string, std::string>& md) const {
    auto it = md.find("AOTI_DEVICE_KEY");
    if (it == md.end())
      return;
    auto want = device_.is_cuda() ? "cuda" : "cpu";
    if (it->second != want)
      throw std::runtime_error("model '" + model_.name + "': package '" + model_.path
                               + "' was compiled for " + it->second + ", and this instance runs on "
                               + (device_.is_cuda() ? "a CUDA device" : "the CPU")
                               + "; compile one package per device kind");
  }

  /// What the package's metadata records of its inputs (make_models.py writes
  /// actorserve.inputs: each input's dims past the batch dimension, "64;3,24,24") must be what is
  /// declared.
  void check_declared_inputs(const std::unordered_map<std::string, std::string>& md) const {
    auto it = md.find("actorserve.inputs");
    if (it == md.end())
      return;
    auto recorded = split(it->second, ';');
    if (recorded.size() != model_.inputs.size())
      throw std::runtime_error("model '" + model_.name + "': package '" + model_.path + "' takes "
                               + std::to_string(recorded.size()) + " inputs; "
                               + std::to_string(model_.inputs.size()) + " are declared");
    for (std::size_t i = 0; i < recorded.size(); ++i) {
      std::vector<int64_t> compiled; // (none: an input with only the batch dimension)
      if (!recorded[i].empty())
        for (auto& d : split(recorded[i], ','))
          compiled.push_back(std::stoll(d));
      if (compiled != model_.inputs[i].dims)
        throw std::runtime_error("model '" + model_.name + "': input " + std::to_string(i) + " ('"
                                 + model_.inputs[i].name + "') is declared "
                                 + shape_to_string(model_.inputs[i].dims) + "; package '"
                                 + model_.path + "' was compiled for "
                                 + shape_to_string(compiled));
    }
  }

  /// One run on zeros of the declared inputs: the package must take them and give the declared
  /// outputs (count, datatypes, dims past the batch dimension).
  void check_signature() {
    c10::InferenceMode guard;
    int64_t rows = std::max<int64_t>(1, batch_min_);
    std::vector<at::Tensor> args;
    std::string shapes;
    for (auto& spec : model_.inputs) {
      auto shape = model_.batched_shape(spec, rows, 1);
      shapes += (shapes.empty() ? "" : ", ") + spec.name + " " + shape_to_string(shape);
      args.push_back(torch::zeros(shape, torch::TensorOptions().dtype(to_torch(spec.dtype))
                                           .device(device_)));
    }
    std::vector<at::Tensor> outs;
    try {
      outs = loader_->run(args);
    } catch (const std::exception&) { // (AOTInductor logs the reason itself, on stderr)
      throw std::runtime_error("model '" + model_.name + "': package '" + model_.path
                               + "' does not take the declared inputs: a run on zeros of "
                               + shapes + " failed (libtorch's reason is logged just above)");
    }
    if (outs.size() != model_.outputs.size())
      throw std::runtime_error("model '" + model_.name + "': package '" + model_.path + "' gives "
                               + std::to_string(outs.size()) + " outputs; "
                               + std::to_string(model_.outputs.size()) + " are declared");
    for (std::size_t i = 0; i < outs.size(); ++i) {
      auto& spec = model_.outputs[i];
      auto dims = std::vector<int64_t>(outs[i].sizes().begin(), outs[i].sizes().end());
      auto want = model_.batched_shape(spec, rows, -1);
      bool fits = dims.size() == want.size();
      for (std::size_t d = 0; fits && d < dims.size(); ++d)
        fits = want[d] < 0 || want[d] == dims[d];
      if (from_torch(outs[i].scalar_type()) != spec.dtype || !fits)
        throw std::runtime_error("model '" + model_.name + "': output " + std::to_string(i) + " ('"
                                 + spec.name + "') of package '" + model_.path + "' is "
                                 + c10::toString(outs[i].scalar_type()) + " "
                                 + shape_to_string(dims) + " for a batch of "
                                 + std::to_string(rows) + "; declared "
                                 + std::string(to_string(spec.dtype)) + " "
                                 + shape_to_string(want));
    }
  }

  const model_config& model_;
  c10::Device device_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  int64_t batch_min_ = 1;
  int64_t batch_max_ = std::numeric_limits<int64_t>::max();
};

backend_registrar registrar{"aoti", [](const backend_context& ctx) {
                              return std::make_unique<aoti_backend>(ctx);
                            }};

} // namespace
} // namespace actorserve
