#include "runtime/image_preprocess.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "runtime/tensor.hpp"

namespace actorserve {

image_transform make_image_transform(const preprocess_settings& p, int in_h, int in_w) {
  if (in_h < 1 || in_w < 1) // (requests are checked before: validate_request)
    throw std::invalid_argument("image of " + std::to_string(in_h) + "x" + std::to_string(in_w)
                                + " pixels: it must be at least 1x1");
  image_transform t;
  t.in_h = in_h;
  t.in_w = in_w;
  t.out_h = p.resize_height > 0 ? static_cast<int>(p.resize_height) : in_h;
  t.out_w = p.resize_width > 0 ? static_cast<int>(p.resize_width) : in_w;
  t.scale = static_cast<float>(p.scale);
  for (int c = 0; c < 3; ++c) {
    t.mean[c] = static_cast<float>(p.mean[static_cast<std::size_t>(c)]);
    t.inv_std[c] = static_cast<float>(1.0 / p.stdev[static_cast<std::size_t>(c)]);
  }
  return t;
}

std::size_t transformed_image_bytes(const image_transform& t, image_dtype dtype) {
  return static_cast<std::size_t>(3) * t.out_h * t.out_w * (dtype == image_dtype::f32 ? 4 : 2);
}

uint16_t float_to_bfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if (std::isnan(value))
    return static_cast<uint16_t>((bits >> 16) | 0x40u); // stays a (quiet) NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float bfloat16_to_float(uint16_t bits) {
  uint32_t x = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

void preprocess_images_cpu(const uint8_t* in, int n, const image_transform& t, image_dtype dtype,
                           void* out) {
  auto in_image = static_cast<std::size_t>(t.in_h) * t.in_w * 3;
  for (int i = 0; i < n; ++i) {
    const uint8_t* img = in + i * in_image;
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < t.out_h; ++y)
        for (int x = 0; x < t.out_w; ++x) {
          float v = transform_pixel(img, t, c, y, x);
          auto k = output_index(t, i, c, y, x);
          switch (dtype) {
            case image_dtype::f32: static_cast<float*>(out)[k] = v; break;
            case image_dtype::f16: static_cast<uint16_t*>(out)[k] = float_to_half(v); break;
            case image_dtype::bf16: static_cast<uint16_t*>(out)[k] = float_to_bfloat16(v); break;
          }
        }
  }
}

} // namespace actorserve
