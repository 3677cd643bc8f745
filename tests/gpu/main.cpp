// The GPU tests' runner: without a CUDA device each test exits with 77, which ctest reports as
// skipped (SKIP_RETURN_CODE), so CI without a GPU stays green and says what did not run.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>

#include "runtime/cuda/image_preprocess_cuda.hpp"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    listing = listing || std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-l") == 0;
  if (!listing && actorserve::cuda::device_count() == 0) {
    std::printf("SKIPPED: no CUDA device on this machine\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
