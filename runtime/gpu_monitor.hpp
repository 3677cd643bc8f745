// GPU utilisation and memory per device from NVML. NVML is loaded with dlopen at run time, so
// the same binary runs where no NVIDIA driver exists (then there is simply no monitor, and no GPU
// series are exported: they are never invented).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace actorserve {

struct gpu_sample {
  unsigned index = 0;
  std::string name;          // e.g. "NVIDIA H200"
  double utilization = 0;    // 0..1, GPU busy over NVML's last sample period
  uint64_t memory_used = 0;  // bytes
  uint64_t memory_total = 0; // bytes
};

class gpu_monitor {
public:
  /// nullptr when NVML cannot be loaded or initialised, or sees no device.
  static std::unique_ptr<gpu_monitor> open();
  virtual ~gpu_monitor();

  /// One sample per device; devices whose queries fail are left out.
  virtual std::vector<gpu_sample> sample() = 0;
};

} // namespace actorserve
