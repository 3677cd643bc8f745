// actorserve-direct: the model called directly from C++ through the same backend (no server),
// at given batch sizes, on the model's first configured device: the ceiling a serving system can
// approach. Prints rows/s and the time per batch for each size. On a GPU each batch includes the
// copy of its inputs in and its outputs out (and the preprocessing, if configured), with as many
// batches in flight as the backend holds (gpu.inflight_batches).
//   actorserve-direct CONFIG MODEL BATCH_SIZES(1,16,64) [SECONDS]
#include <chrono>
#include <deque>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "runtime/batch_assembly.hpp"
#include "runtime/error.hpp"
#include "runtime/model_backend.hpp"

using namespace actorserve;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: actorserve-direct CONFIG MODEL BATCH_SIZES [SECONDS]\n";
    return 2;
  }
  auto cfg = load_deployment_here(argv[1]);
  if (!cfg) {
    std::cerr << error_message(cfg.error()) << "\n";
    return 1;
  }
  auto* m = cfg->find_model(argv[2]);
  if (!m) {
    std::cerr << "no model " << argv[2] << "\n";
    return 1;
  }
  double seconds = argc > 4 ? std::stod(argv[4]) : 5;
  auto device = m->devices.front();
  auto backend = backend_registry::global().create(m->backend, backend_context{*m, device, 0});
  if (device != "cpu") // what a worker's warm-up does: every bucket (cuDNN tuning, graph capture)
    for (auto b : m->gpu_buckets()) {
      auto in = warmup_inputs(*m, b);
      backend->run(in);
    }
  std::printf("%-10s %-7s %6s %12s %12s\n", "model", "device", "batch", "rows_per_s",
              "us_per_batch");
  std::stringstream sizes(argv[3]);
  std::string item;
  while (std::getline(sizes, item, ',')) {
    auto rows = static_cast<uint32_t>(std::stoi(item));
    std::vector<infer_request> one(1);
    one[0].inputs = warmup_inputs(*m, rows);
    auto views = gather_batch(*m, one);
    for (int i = 0; i < 5; ++i)
      backend->start(views)->wait();
    auto t0 = std::chrono::steady_clock::now();
    auto stop = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(seconds));
    uint64_t batches = 0;
    // As a worker drives it: up to max_inflight() batches started before the oldest is waited for.
    std::deque<std::unique_ptr<pending_batch>> started;
    while (std::chrono::steady_clock::now() < stop) {
      if (started.size() >= backend->max_inflight()) {
        started.front()->wait();
        started.pop_front();
        ++batches;
      }
      started.push_back(backend->start(views));
    }
    for (; !started.empty(); started.pop_front(), ++batches)
      started.front()->wait();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-10s %-7s %6u %12.0f %12.1f\n", m->name.c_str(), device.c_str(), rows,
                batches * rows / secs, secs / batches * 1e6);
  }
}
