// GPU correctness: the CUDA preprocessing kernel equals the CPU transform, and the TorchScript
// backend on a GPU (fp16, channels-last, padding to buckets, CUDA graphs, two batches in flight)
// gives the CPU's outputs within the precision's tolerance. Uses examples/models/make_models.py's
// convnet (built by the `models` test fixture).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "runtime/cuda/image_preprocess_cuda.hpp"
#include "runtime/image_preprocess.hpp"
#include "runtime/model_backend.hpp"

using namespace actorserve;

namespace {

std::vector<uint8_t> random_images(int n, int h, int w, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(static_cast<std::size_t>(n) * h * w * 3);
  for (auto& x : v)
    x = static_cast<uint8_t>(rng() & 0xff);
  return v;
}

model_config convnet(gpu_precision precision, bool graphs, uint32_t inflight = 1) {
  model_config m;
  m.name = "convnet";
  m.backend = "torchscript";
  m.path = std::string(ACTORSERVE_TEST_MODELS) + "/convnet.pt";
  m.max_batch_size = 8;
  m.inputs = {tensor_spec{"image", datatype::UINT8, {32, 32, 3}}};
  m.outputs = {tensor_spec{"logits", datatype::FP32, {10}}};
  m.preprocess.enabled = true;
  m.preprocess.input = "image";
  m.preprocess.resize_height = 24;
  m.preprocess.resize_width = 24;
  m.preprocess.mean = {0.485, 0.456, 0.406};
  m.preprocess.stdev = {0.229, 0.224, 0.225};
  m.gpu.precision = precision;
  m.gpu.channels_last = precision != gpu_precision::fp32;
  m.gpu.cuda_graphs = graphs;
  m.gpu.inflight_batches = inflight;
  return m;
}

tensor images_tensor(int n, unsigned seed) {
  tensor t;
  t.name = "image";
  t.dtype = datatype::UINT8;
  t.shape = {n, 32, 32, 3};
  t.data = random_images(n, 32, 32, seed);
  return t;
}

std::vector<float> floats(const tensor& t) {
  REQUIRE(t.dtype == datatype::FP32);
  std::vector<float> v(t.data.size() / 4);
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

std::vector<float> run_on(model_backend& b, int n, unsigned seed) {
  std::vector<tensor> in{images_tensor(n, seed)};
  auto out = b.run(in);
  REQUIRE(out.size() == 1);
  CHECK(out[0].shape == std::vector<int64_t>{n, 10});
  return floats(out[0]);
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, double atol,
                 double rtol) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) - rtol * std::abs(want[i]));
  INFO("largest excess over rtol*|want|: " << worst << " (atol " << atol << ")");
  CHECK(worst <= atol);
}

struct warnings {
  std::vector<std::string> seen;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& w) { seen.push_back(w); };
  }
};

} // namespace

TEST_CASE("the preprocessing kernel writes exactly what the CPU transform writes", "[gpu]") {
  preprocess_settings p;
  p.mean = {0.485, 0.456, 0.406};
  p.stdev = {0.229, 0.224, 0.225};
  for (auto [h, w, rh, rw] : {std::array<int, 4>{37, 53, 24, 32}, {16, 16, 0, 0},
                              {224, 224, 224, 224}, {8, 8, 20, 12}}) {
    p.resize_height = static_cast<uint32_t>(rh);
    p.resize_width = static_cast<uint32_t>(rw);
    auto imgs = random_images(3, h, w, static_cast<unsigned>(h * w));
    for (int nhwc = 0; nhwc < 2; ++nhwc)
      for (auto dtype : {image_dtype::f32, image_dtype::f16, image_dtype::bf16}) {
        auto t = make_image_transform(p, h, w);
        t.out_nhwc = nhwc;
        auto bytes = 3 * transformed_image_bytes(t, dtype);
        std::vector<uint8_t> cpu(bytes), gpu(bytes);
        preprocess_images_cpu(imgs.data(), 3, t, dtype, cpu.data());
        auto err = cuda::preprocess_images_host(imgs.data(), 3, t, dtype, gpu.data());
        INFO(h << "x" << w << " -> " << t.out_h << "x" << t.out_w << " nhwc " << nhwc
                << " dtype " << static_cast<int>(dtype));
        REQUIRE(err.empty());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < bytes; ++i)
          differ += cpu[i] != gpu[i];
        CHECK(differ == 0);
      }
  }
}

TEST_CASE("fp16 channels-last outputs on the GPU equal the CPU's within fp16 tolerance",
          "[gpu]") {
  auto cpu_model = convnet(gpu_precision::fp32, false);
  auto cpu = backend_registry::global().create("torchscript", {cpu_model, "cpu", 0});
  for (auto precision : {gpu_precision::fp16, gpu_precision::bf16, gpu_precision::fp32}) {
    INFO("precision " << to_string(precision));
    auto m = convnet(precision, false);
    auto gpu = backend_registry::global().create("torchscript", {m, "cuda:0", 0});
    double tol = precision == gpu_precision::fp32   ? 1e-4
                 : precision == gpu_precision::fp16 ? 2e-2
                                                    : 1e-1;
    for (int n : {1, 5, 8}) { // 5 is padded to the bucket of 8
      INFO("batch " << n);
      check_close(run_on(*gpu, n, 11u + n), run_on(*cpu, n, 11u + n), tol, tol);
    }
  }
}

TEST_CASE("CUDA graph replays give the eager outputs, padded batches included", "[gpu]") {
  warnings w;
  auto eager_model = convnet(gpu_precision::fp16, false);
  auto graph_model = convnet(gpu_precision::fp16, true);
  auto eager = backend_registry::global().create("torchscript", {eager_model, "cuda:0", 0});
  auto graphs = backend_registry::global().create("torchscript",
                                                  {graph_model, "cuda:0", 0, w.sink()});
  for (auto b : graph_model.gpu_buckets()) // what warm-up does: captures every bucket
    run_on(*graphs, static_cast<int>(b), 1);
  for (auto& s : w.seen)
    FAIL_CHECK("unexpected warning: " << s);
  for (int n : {1, 3, 8, 2, 7}) {
    INFO("batch " << n);
    check_close(run_on(*graphs, n, 100u + n), run_on(*eager, n, 100u + n), 1e-3, 1e-3);
  }
}

TEST_CASE("two batches in flight on one GPU instance come back whole and in order", "[gpu]") {
  auto m = convnet(gpu_precision::fp16, true, 2);
  auto gpu = backend_registry::global().create("torchscript", {m, "cuda:0", 0});
  CHECK(gpu->max_inflight() == 2);
  for (auto b : m.gpu_buckets())
    run_on(*gpu, static_cast<int>(b), 1);
  auto one_a = run_on(*gpu, 3, 21);
  auto one_b = run_on(*gpu, 6, 22);
  std::vector<infer_request> ra(1), rb(1);
  ra[0].inputs = {images_tensor(3, 21)};
  rb[0].inputs = {images_tensor(6, 22)};
  auto pa = gpu->start(gather_batch(m, ra));
  auto pb = gpu->start(gather_batch(m, rb)); // staged while the first runs
  auto a = pa->wait();
  auto b = pb->wait();
  CHECK(floats(a.at(0)) == one_a);
  CHECK(floats(b.at(0)) == one_b);
}

TEST_CASE("a GPU that does not exist is refused with a clear error", "[gpu]") {
  auto m = convnet(gpu_precision::fp16, false);
  CHECK_THROWS_WITH(backend_registry::global().create("torchscript", {m, "cuda:99", 0}),
                    Catch::Contains("device cuda:99 does not exist"));
}

TEST_CASE("float inputs are cast to the GPU precision and outputs back to their datatype",
          "[gpu]") {
  model_config m;
  m.name = "mlp";
  m.backend = "torchscript";
  m.path = std::string(ACTORSERVE_TEST_MODELS) + "/mlp.pt";
  m.max_batch_size = 8;
  m.inputs = {tensor_spec{"input", datatype::FP32, {64}}};
  m.outputs = {tensor_spec{"logits", datatype::FP32, {10}}};
  auto cpu = backend_registry::global().create("torchscript", {m, "cpu", 0});
  m.gpu.precision = gpu_precision::fp16;
  m.gpu.cuda_graphs = true;
  auto gpu = backend_registry::global().create("torchscript", {m, "cuda:0", 0});
  for (int n : {8, 3, 1}) {
    std::vector<tensor> in(1);
    in[0].name = "input";
    in[0].dtype = datatype::FP32;
    in[0].shape = {n, 64};
    std::vector<float> x(static_cast<std::size_t>(n) * 64);
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>(std::sin(0.1 * static_cast<double>(i)));
    in[0].data.resize(x.size() * 4);
    std::memcpy(in[0].data.mutable_data(), x.data(), in[0].data.size());
    auto want = cpu->run(in);
    auto got = gpu->run(in);
    REQUIRE(got.at(0).dtype == datatype::FP32);
    CHECK(got.at(0).shape == std::vector<int64_t>{n, 10});
    check_close(floats(got.at(0)), floats(want.at(0)), 1e-2, 1e-2);
  }
}
