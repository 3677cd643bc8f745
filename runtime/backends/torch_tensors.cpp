#include "runtime/backends/torch_tensors.hpp"

#include <stdexcept>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include "runtime/model_backend.hpp"

namespace actorserve::torch_backend {

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
    case datatype::BYTES: break; // (config keeps BYTES away from backend models)
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

std::string first_line(const std::string& what) {
  auto pos = what.find('\n');
  return pos == std::string::npos ? what : what.substr(0, pos);
}

tensor to_host_tensor(const at::Tensor& host) {
  tensor t;
  t.dtype = from_torch(host.scalar_type());
  t.shape.assign(host.sizes().begin(), host.sizes().end());
  auto bytes = static_cast<std::size_t>(host.numel()) * host.element_size();
  auto* p = static_cast<const uint8_t*>(host.data_ptr());
  t.data.assign(p, p + bytes);
  return t;
}

c10::Device device_of(const model_config& model, const std::string& device) {
  if (device == "cpu")
    return torch::kCPU;
  auto index = std::stoi(device.substr(5));
  auto count = static_cast<int>(torch::cuda::device_count());
  if (index >= count)
    throw std::runtime_error("model '" + model.name + "': device " + device
                             + " does not exist (this process sees " + std::to_string(count)
                             + " CUDA device(s))");
#if !ACTORSERVE_WITH_CUDA
  throw std::runtime_error("model '" + model.name + "': device " + device
                           + " needs actorserve built with CUDA (nvcc was not found)");
#endif
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

void set_cpu_threads(const model_config& model, const c10::Device& device) {
  auto threads = backend_parameter(model, "intra_op_threads", "");
  if (!threads.empty())
    at::set_num_threads(std::stoi(threads));
  else if (device.is_cpu() && model.cpu_threads > 0)
    at::set_num_threads(static_cast<int>(model.cpu_threads));
}

} // namespace actorserve::torch_backend
