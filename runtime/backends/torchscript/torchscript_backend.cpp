// The TorchScript backend: loads a scripted/traced module with libtorch and runs batches on the CPU
// or a CUDA device. The only file of the project that includes torch headers; it registers itself
// as "torchscript" when linked in. Exceptions from libtorch leave through model_backend::run as
// std::exception with libtorch's message, and the worker turns them into error values.
#include <stdexcept>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include "runtime/model_backend.hpp"

namespace actorserve {
namespace {

c10::ScalarType to_torch(datatype x) {
  switch (x) {
    case datatype::BOOL: return torch::kBool;
    case datatype::UINT8: return torch::kUInt8;
    case datatype::INT8: return torch::kInt8;
    case datatype::INT16: return torch::kInt16;
    case datatype::INT32: return torch::kInt32;
    case datatype::INT64: return torch::kInt64;
    case datatype::FP16: return torch::kHalf;
    case datatype::FP32: return torch::kFloat;
    case datatype::FP64: return torch::kDouble;
  }
  throw std::logic_error("unhandled datatype");
}

datatype from_torch(c10::ScalarType x) {
  switch (x) {
    case torch::kBool: return datatype::BOOL;
    case torch::kUInt8: return datatype::UINT8;
    case torch::kInt8: return datatype::INT8;
    case torch::kInt16: return datatype::INT16;
    case torch::kInt32: return datatype::INT32;
    case torch::kInt64: return datatype::INT64;
    case torch::kHalf: return datatype::FP16;
    case torch::kFloat: return datatype::FP32;
    case torch::kDouble: return datatype::FP64;
    default:
      throw std::runtime_error(std::string("the model returned a tensor of unsupported dtype ")
                               + c10::toString(x));
  }
}

class torchscript_backend : public model_backend {
public:
  explicit torchscript_backend(const backend_context& ctx)
    : model_(ctx.model), device_(torch::kCPU) {
    if (model_.path.empty())
      throw std::runtime_error("model '" + model_.name
                               + "': the torchscript backend needs \"path\" to a TorchScript file");
    if (ctx.device != "cpu") {
      auto index = std::stoi(ctx.device.substr(5));
      auto count = static_cast<int>(torch::cuda::device_count());
      if (index >= count)
        throw std::runtime_error("model '" + model_.name + "': device " + ctx.device
                                 + " does not exist (this process sees " + std::to_string(count)
                                 + " CUDA device(s))");
      device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    auto threads = backend_parameter(model_, "intra_op_threads", "");
    if (!threads.empty())
      at::set_num_threads(std::stoi(threads));
    try {
      module_ = torch::jit::load(model_.path, device_);
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + model_.name + "': cannot load TorchScript file '"
                               + model_.path + "': " + first_line(e.what()));
    }
    module_.eval();
  }

  std::vector<tensor> run(std::vector<tensor>& inputs) override {
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    args.reserve(inputs.size());
    for (auto& t : inputs) {
      auto host = torch::from_blob(t.data.data(), t.shape,
                                   torch::TensorOptions().dtype(to_torch(t.dtype)));
      args.emplace_back(device_.is_cpu() ? host : host.to(device_, /*non_blocking=*/false));
    }
    c10::IValue result;
    try {
      result = module_.forward(std::move(args));
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + model_.name + "' failed: " + first_line(e.what()));
    }
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
      for (auto& spec : model_.outputs) {
        auto it = dict.find(spec.name);
        if (it == dict.end())
          throw std::runtime_error("model '" + model_.name + "' returned a dict without output '"
                                   + spec.name + "'");
        outs.push_back(it->value().toTensor());
      }
    } else {
      throw std::runtime_error("model '" + model_.name + "' returned " + result.tagKind()
                               + "; expected a tensor, a tuple/list of tensors or a dict");
    }
    std::vector<tensor> out;
    out.reserve(outs.size());
    for (auto& o : outs) {
      auto host = o.to(torch::kCPU).contiguous();
      tensor t;
      t.dtype = from_torch(host.scalar_type());
      t.shape.assign(host.sizes().begin(), host.sizes().end());
      auto bytes = static_cast<std::size_t>(host.numel()) * host.element_size();
      auto* p = static_cast<const uint8_t*>(host.data_ptr());
      t.data.assign(p, p + bytes);
      out.push_back(std::move(t));
    }
    return out;
  }

private:
  static std::string first_line(const std::string& what) {
    auto pos = what.find('\n');
    return pos == std::string::npos ? what : what.substr(0, pos);
  }

  model_config model_;
  torch::Device device_;
  torch::jit::Module module_;
};

backend_registrar registrar{"torchscript", [](const backend_context& ctx) {
                              return std::make_unique<torchscript_backend>(ctx);
                            }};

} // namespace
} // namespace actorserve
