// The image pipeline's ceiling on this machine: TurboJPEG decoding the benchmark's files in a
// tight loop on N threads, nothing else (no HTTP, no resize). Prints images/s for full-size
// decoding and for DCT-scaled decoding (the shorter side kept >= 256, as shrink_to: 256 does).
//
//   actorserve-decode-ceiling SECONDS THREADS FILE...
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "runtime/image_codec.hpp"

using namespace actorserve;

namespace {

double run(const std::vector<std::string>& files, double seconds, int threads, uint32_t shrink) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  decode_limits limits;
  limits.min_shorter_side = shrink;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (std::size_t i = static_cast<std::size_t>(t); !stop.load(); ++i) {
        auto img = decode_image(files[i % files.size()], limits);
        if (!img) {
          std::fprintf(stderr, "decode failed\n");
          std::exit(1);
        }
        done.fetch_add(1);
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool)
    th.join();
  return static_cast<double>(done.load()) / seconds;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s SECONDS THREADS FILE...\n", argv[0]);
    return 2;
  }
  double seconds = std::stod(argv[1]);
  int threads = std::stoi(argv[2]);
  std::vector<std::string> files;
  for (int i = 3; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    files.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::printf("decode ceiling, %d threads, %zu files: full size %.1f images/s, "
              "DCT-scaled (shorter side >= 256) %.1f images/s\n",
              threads, files.size(), run(files, seconds, threads, 0),
              run(files, seconds, threads, 256));
  return 0;
}
