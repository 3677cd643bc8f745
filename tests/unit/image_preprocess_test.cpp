#include <stdexcept>

#include <catch2/catch.hpp>

#include "runtime/image_preprocess.hpp"
#include "runtime/tensor.hpp"

using namespace actorserve;

namespace {

image_transform identity(int h, int w) {
  preprocess_settings p;
  p.scale = 1.0;
  return make_image_transform(p, h, w);
}

} // namespace

TEST_CASE("preprocessing normalizes each channel and writes planar NCHW", "[preprocess]") {
  preprocess_settings p;
  p.mean = {0.5, 0.25, 0.0};
  p.stdev = {0.25, 0.5, 1.0};
  auto t = make_image_transform(p, 1, 2);
  CHECK(t.out_h == 1);
  CHECK(t.out_w == 2);
  const uint8_t img[6] = {255, 0, 51, 0, 255, 102}; // two pixels, RGB each
  float out[6];
  preprocess_images_cpu(img, 1, t, image_dtype::f32, out);
  CHECK(out[0] == Approx(2.0));   // R of pixel 0: (1 - 0.5) / 0.25
  CHECK(out[1] == Approx(-2.0));  // R of pixel 1
  CHECK(out[2] == Approx(-0.5));  // G of pixel 0: (0 - 0.25) / 0.5
  CHECK(out[3] == Approx(1.5));   // G of pixel 1
  CHECK(out[4] == Approx(0.2));   // B of pixel 0
  CHECK(out[5] == Approx(0.4));   // B of pixel 1
  t.out_nhwc = 1; // channels-last writes the pixel's channels together
  float nhwc[6];
  preprocess_images_cpu(img, 1, t, image_dtype::f32, nhwc);
  CHECK(nhwc[0] == out[0]);
  CHECK(nhwc[1] == out[2]);
  CHECK(nhwc[2] == out[4]);
  CHECK(nhwc[3] == out[1]);
}

TEST_CASE("resizing is bilinear with half-pixel centres, like PyTorch's interpolate",
          "[preprocess]") {
  // Upscaling a 1x2 image [0, 255] to 1x4 samples at x = -0.25 (clamped), 0.25, 0.75, 1.25.
  auto t = identity(1, 2);
  t.out_w = 4;
  const uint8_t up[6] = {0, 0, 0, 255, 255, 255};
  float out[12];
  preprocess_images_cpu(up, 1, t, image_dtype::f32, out);
  CHECK(out[0] == 0.0f);
  CHECK(out[1] == Approx(63.75));
  CHECK(out[2] == Approx(191.25));
  CHECK(out[3] == 255.0f);
  // Downscaling 1x4 -> 1x2 averages neighbours: x = 0.5 and 2.5.
  auto d = identity(1, 4);
  d.out_w = 2;
  const uint8_t down[12] = {10, 0, 0, 20, 0, 0, 30, 0, 0, 50, 0, 0};
  float small[6];
  preprocess_images_cpu(down, 1, d, image_dtype::f32, small);
  CHECK(small[0] == Approx(15.0));
  CHECK(small[1] == Approx(40.0));
}

TEST_CASE("half and bfloat16 outputs round the fp32 result to nearest even", "[preprocess]") {
  preprocess_settings p;
  p.mean = {0.1, 0.2, 0.3};
  p.stdev = {0.3, 0.2, 0.1};
  auto t = make_image_transform(p, 2, 3);
  std::vector<uint8_t> img(2 * 3 * 3);
  for (std::size_t i = 0; i < img.size(); ++i)
    img[i] = static_cast<uint8_t>(i * 37 % 256);
  std::vector<float> f(18);
  std::vector<uint16_t> h(18), b(18);
  preprocess_images_cpu(img.data(), 1, t, image_dtype::f32, f.data());
  preprocess_images_cpu(img.data(), 1, t, image_dtype::f16, h.data());
  preprocess_images_cpu(img.data(), 1, t, image_dtype::bf16, b.data());
  for (std::size_t i = 0; i < f.size(); ++i) {
    CHECK(h[i] == float_to_half(f[i]));
    CHECK(b[i] == float_to_bfloat16(f[i]));
  }
  CHECK(transformed_image_bytes(t, image_dtype::f16) == 18 * 2);
  CHECK(float_to_bfloat16(1.0f) == 0x3F80);
  CHECK(float_to_bfloat16(1.00390625f) == 0x3F80); // a tie goes to even
  CHECK(float_to_bfloat16(1.01171875f) == 0x3F82); // a tie goes to even (up)
  CHECK(bfloat16_to_float(0x3F82) == 1.015625f);
}

TEST_CASE("a transform of an empty image is refused", "[preprocess]") {
  preprocess_settings p;
  p.resize_height = p.resize_width = 4;
  CHECK_THROWS_AS(make_image_transform(p, 0, 0), std::invalid_argument);
  CHECK_THROWS_AS(make_image_transform(p, 3, 0), std::invalid_argument);
  CHECK_THROWS_AS(make_image_transform(p, -1, 3), std::invalid_argument);
  CHECK_NOTHROW(make_image_transform(p, 1, 1));
}
