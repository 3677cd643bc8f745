// The boundary to model frameworks: a backend loads one model instance on one device, warms up
// and runs batches. Backends are found by name in an open registry; users add their own by
// linking a file that registers a factory (see examples/custom_backend).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/batch_assembly.hpp"
#include "runtime/config.hpp"
#include "runtime/tensor.hpp"

namespace actorserve {

struct backend_context {
  const model_config& model;
  std::string device; // "cpu" or "cuda:N"
  uint32_t instance = 0;
  std::function<void(const std::string&)> warn = {}; // logs a warning as the worker's
};

/// A batch started on a device; its outputs are fetched with wait(), possibly on another thread.
class pending_batch {
public:
  virtual ~pending_batch();

  /// Blocks until the batch's outputs are on the host and returns them (as run() does); throws
  /// std::exception when the batch failed.
  virtual std::vector<tensor> wait() = 0;
};

class model_backend {
public:
  virtual ~model_backend();

  /// Starts a batch from views of its requests' inputs (valid until wait() returns). The default
  /// concatenates them and calls run() at once; a GPU backend copies them into its pinned staging
  /// buffer, enqueues the copies and kernels and returns while the device works.
  virtual std::unique_ptr<pending_batch> start(const std::vector<batch_input>& inputs);

  /// How many started batches this instance can hold before the oldest is waited for.
  virtual uint32_t max_inflight() const { return 1; }

  /// Runs one batch. `inputs` follow the model's declared input order, each with the batch
  /// dimension first when the model batches. Returns the model's outputs in declared order,
  /// named, on the host. Throws std::exception with a useful message on failure.
  virtual std::vector<tensor> run(std::vector<tensor>& inputs) = 0;
};

/// Creates a backend instance; throws std::exception (e.g. model file unreadable) on failure.
using backend_factory = std::function<std::unique_ptr<model_backend>(const backend_context&)>;

class backend_registry {
public:
  /// The process-wide registry that compiled-in backends add themselves to.
  static backend_registry& global();

  /// Adds `factory` under `name`; false if the name is taken.
  bool add(const std::string& name, backend_factory factory);

  /// Creates a backend; throws std::runtime_error naming the known backends if `name` is unknown.
  std::unique_ptr<model_backend> create(const std::string& name, const backend_context& ctx) const;

  std::vector<std::string> names() const;

  /// CUDA devices usable by the compiled-in backends (0 when none can use a GPU).
  int cuda_devices() const;
  /// Set by a backend that can count them (the TorchScript backend does).
  void set_cuda_device_counter(std::function<int()> counter);

private:
  mutable std::mutex mtx_;
  std::map<std::string, backend_factory> factories_;
  std::function<int()> cuda_counter_;
};

/// Registers a backend from a static initializer: `static backend_registrar reg{"name", f};`
/// in a source file linked as an object (not from a static library, whose unused objects the
/// linker drops).
struct backend_registrar {
  backend_registrar(const std::string& name, backend_factory factory);
};

/// Loads a deployment file for this process: checked against the compiled-in backends, with its
/// devices resolved against the CUDA devices they can use ("all" expanded, missing GPUs refused).
caf::expected<deployment_config> load_deployment_here(const std::string& path);

/// Reads a backend parameter, or `fallback` when the model does not set it.
std::string backend_parameter(const model_config& m, const std::string& key,
                              const std::string& fallback);

} // namespace actorserve
