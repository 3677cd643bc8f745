#include "runtime/gpu_monitor.hpp"

#include <dlfcn.h>

namespace actorserve {

namespace {

// The few NVML declarations used here (nvml.h is not on this machine; the ABI is stable).
using nvml_return = int; // NVML_SUCCESS == 0
struct nvml_device_st;
using nvml_device = nvml_device_st*;
struct nvml_utilization {
  unsigned int gpu;
  unsigned int memory;
};
struct nvml_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

class nvml_monitor : public gpu_monitor {
public:
  explicit nvml_monitor(void* lib) : lib_(lib) {
  }

  ~nvml_monitor() override {
    if (shutdown_)
      shutdown_();
    dlclose(lib_);
  }

  bool init() {
    auto init = sym<nvml_return (*)()>("nvmlInit_v2");
    shutdown_ = sym<nvml_return (*)()>("nvmlShutdown");
    count_ = sym<nvml_return (*)(unsigned*)>("nvmlDeviceGetCount_v2");
    handle_ = sym<nvml_return (*)(unsigned, nvml_device*)>("nvmlDeviceGetHandleByIndex_v2");
    util_ = sym<nvml_return (*)(nvml_device, nvml_utilization*)>("nvmlDeviceGetUtilizationRates");
    mem_ = sym<nvml_return (*)(nvml_device, nvml_memory*)>("nvmlDeviceGetMemoryInfo");
    name_ = sym<nvml_return (*)(nvml_device, char*, unsigned)>("nvmlDeviceGetName");
    if (!init || !shutdown_ || !count_ || !handle_ || !util_ || !mem_ || !name_)
      return false;
    if (init() != 0) {
      shutdown_ = nullptr;
      return false;
    }
    unsigned n = 0;
    return count_(&n) == 0 && n > 0;
  }

  std::vector<gpu_sample> sample() override {
    std::vector<gpu_sample> out;
    unsigned n = 0;
    if (count_(&n) != 0)
      return out;
    for (unsigned i = 0; i < n; ++i) {
      nvml_device dev = nullptr;
      nvml_utilization u{};
      nvml_memory m{};
      char name[96] = {};
      if (handle_(i, &dev) != 0 || util_(dev, &u) != 0 || mem_(dev, &m) != 0)
        continue;
      name_(dev, name, sizeof name);
      out.push_back(gpu_sample{i, name, u.gpu / 100.0, m.used, m.total});
    }
    return out;
  }

private:
  template <class F>
  F sym(const char* s) {
    return reinterpret_cast<F>(dlsym(lib_, s));
  }

  void* lib_;
  nvml_return (*shutdown_)() = nullptr;
  nvml_return (*count_)(unsigned*) = nullptr;
  nvml_return (*handle_)(unsigned, nvml_device*) = nullptr;
  nvml_return (*util_)(nvml_device, nvml_utilization*) = nullptr;
  nvml_return (*mem_)(nvml_device, nvml_memory*) = nullptr;
  nvml_return (*name_)(nvml_device, char*, unsigned) = nullptr;
};

} // namespace

gpu_monitor::~gpu_monitor() = default;

std::unique_ptr<gpu_monitor> gpu_monitor::open() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return nullptr;
  auto m = std::make_unique<nvml_monitor>(lib);
  if (!m->init())
    return nullptr;
  return m;
}

} // namespace actorserve
