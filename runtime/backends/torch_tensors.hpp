// What the libtorch backends share (torchscript, aoti): datatypes both ways, a host tensor's bytes
// as an actorserve tensor, the device a worker names, the CPU threads an instance computes with.
// Torch headers: included by the backends' own files only.
#pragma once

#include <string>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include "runtime/config.hpp"
#include "runtime/tensor.hpp"

namespace actorserve::torch_backend {

c10::ScalarType to_torch(datatype x);

/// Throws std::runtime_error for a dtype actorserve has no datatype for.
datatype from_torch(c10::ScalarType x);

/// The first line of a (libtorch) message: its first line says what; the rest is a C++ trace.
std::string first_line(const std::string& what);

/// A host tensor's bytes as an actorserve tensor.
tensor to_host_tensor(const at::Tensor& host);

/// The torch device of a worker's "cpu" or "cuda:N"; throws naming the model when the device does
/// not exist or the build has no CUDA.
c10::Device device_of(const model_config& model, const std::string& device);

/// Sets libtorch's intra-op threads: the model's intra_op_threads parameter, else (on a CPU) its
/// share of the node's cores (model_config::cpu_threads).
void set_cpu_threads(const model_config& model, const c10::Device& device);

} // namespace actorserve::torch_backend
