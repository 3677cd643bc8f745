#include "runtime/image_resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/tensor.hpp"

namespace actorserve {
namespace {

// Pillow's fixed point: 32 bits minus 8 for the pixel and 2 for filter overshoot.
constexpr int precision_bits = 22;

/// The taps of Pillow's bilinear filter for outputs [first, first + n) of an axis resized from
/// `in_size` to `out_size`: for output i, `count[i]` input pixels from `start[i]`, weighted by
/// `weight[i * taps ..]` in fixed point.
struct axis_taps {
  int taps = 0;
  std::vector<int> start, count;
  std::vector<int32_t> weight;
};

double triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

axis_taps bilinear_taps(int in_size, int out_size, int first, int n) {
  axis_taps a;
  double scale = static_cast<double>(in_size) / out_size;
  double filterscale = std::max(scale, 1.0); // (downscaling widens the filter: antialiasing)
  double support = filterscale; // (the triangle's support is 1)
  a.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.start.resize(static_cast<std::size_t>(n));
  a.count.resize(static_cast<std::size_t>(n));
  a.weight.assign(static_cast<std::size_t>(n) * a.taps, 0);
  std::vector<double> w(static_cast<std::size_t>(a.taps));
  for (int i = 0; i < n; ++i) {
    double center = (first + i + 0.5) * scale;
    int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    double sum = 0;
    for (int x = lo; x < hi; ++x)
      sum += w[static_cast<std::size_t>(x - lo)] = triangle((x - center + 0.5) / filterscale);
    a.start[static_cast<std::size_t>(i)] = lo;
    a.count[static_cast<std::size_t>(i)] = hi - lo;
    for (int x = 0; x < hi - lo; ++x) {
      double k = sum != 0.0 ? w[static_cast<std::size_t>(x)] / sum : w[static_cast<std::size_t>(x)];
      double fixed = k * (1 << precision_bits);
      a.weight[static_cast<std::size_t>(i) * a.taps + x] =
        static_cast<int32_t>(k < 0 ? fixed - 0.5 : fixed + 0.5);
    }
  }
  return a;
}

uint8_t clip8(int32_t sum) {
  return static_cast<uint8_t>(std::clamp(sum >> precision_bits, 0, 255));
}

/// One pass over RGB pixels: output j of a line takes the taps of `t` over input positions
/// spaced `stride` bytes apart.
void filter_pixel(const uint8_t* in, std::size_t stride, const axis_taps& t, int j, uint8_t* out) {
  int32_t s0 = 1 << (precision_bits - 1), s1 = s0, s2 = s0;
  const int32_t* k = &t.weight[static_cast<std::size_t>(j) * t.taps];
  const uint8_t* p = in + static_cast<std::size_t>(t.start[static_cast<std::size_t>(j)]) * stride;
  for (int x = 0; x < t.count[static_cast<std::size_t>(j)]; ++x, p += stride) {
    s0 += p[0] * k[x];
    s1 += p[1] * k[x];
    s2 += p[2] * k[x];
  }
  out[0] = clip8(s0);
  out[1] = clip8(s1);
  out[2] = clip8(s2);
}

/// Python's round() on a half-integer: to even.
int round_half_even(double x) {
  return static_cast<int>(std::nearbyint(x));
}

void store(const image_prep& p, const uint8_t* rgb, std::size_t y, std::size_t x, uint8_t* out) {
  std::size_t h = p.crop_height, w = p.crop_width;
  for (std::size_t c = 0; c < 3; ++c) {
    float v = (static_cast<float>(rgb[c]) / 255.0f - p.mean[c]) / p.stdev[c];
    std::size_t at = p.nhwc ? (y * w + x) * 3 + c : (c * h + y) * w + x;
    if (p.fp16) {
      uint16_t half = float_to_half(v);
      std::memcpy(out + at * 2, &half, 2);
    } else {
      std::memcpy(out + at * 4, &v, 4);
    }
  }
}

} // namespace

std::pair<uint32_t, uint32_t> resized_size(uint32_t height, uint32_t width, uint32_t shorter) {
  if (shorter == 0)
    return {height, width};
  auto s = std::min(height, width), l = std::max(height, width);
  auto longer = static_cast<uint32_t>(static_cast<uint64_t>(shorter) * l / s); // (int(): floor)
  return width <= height ? std::pair{longer, shorter} : std::pair{shorter, longer};
}

std::size_t prepared_bytes(const image_prep& p) {
  return std::size_t{3} * p.crop_height * p.crop_width * (p.fp16 ? 2 : 4);
}

caf::error prepare_image(const packed_image_view& img, const image_prep& p, uint8_t* out) {
  auto [rh, rw] = resized_size(img.height, img.width, p.resize_shorter);
  if (rh < p.crop_height || rw < p.crop_width)
    return make_error(errc::invalid_input,
                      "the image is " + std::to_string(rw) + "x" + std::to_string(rh)
                        + " pixels after resizing, smaller than the " + std::to_string(p.crop_width)
                        + "x" + std::to_string(p.crop_height) + " crop");
  int top = round_half_even((static_cast<double>(rh) - p.crop_height) / 2.0);
  int left = round_half_even((static_cast<double>(rw) - p.crop_width) / 2.0);
  int ch = static_cast<int>(p.crop_height), cw = static_cast<int>(p.crop_width);
  auto horizontal = bilinear_taps(static_cast<int>(img.width), static_cast<int>(rw), left, cw);
  auto vertical = bilinear_taps(static_cast<int>(img.height), static_cast<int>(rh), top, ch);
  // Pillow resizes horizontally first, over the rows the vertical pass reads.
  int row0 = vertical.start.front();
  int row1 = 0;
  for (int i = 0; i < ch; ++i)
    row1 = std::max(row1, vertical.start[static_cast<std::size_t>(i)]
                            + vertical.count[static_cast<std::size_t>(i)]);
  std::vector<uint8_t> mid(static_cast<std::size_t>(row1 - row0) * cw * 3);
  for (int y = row0; y < row1; ++y) {
    const uint8_t* line = img.pixels + static_cast<std::size_t>(y) * img.width * 3;
    uint8_t* dst = &mid[static_cast<std::size_t>(y - row0) * cw * 3];
    for (int x = 0; x < cw; ++x)
      filter_pixel(line, 3, horizontal, x, dst + static_cast<std::size_t>(x) * 3);
  }
  // The vertical pass: an output row's pixels all share its taps, so each tap is one weighted
  // row added to the row's sums (a loop the compiler vectorizes), the same sums in the same order.
  auto line_bytes = static_cast<std::size_t>(cw) * 3;
  std::vector<int32_t> sums(line_bytes);
  std::vector<uint8_t> rgb_line(line_bytes);
  for (int y = 0; y < ch; ++y) {
    std::fill(sums.begin(), sums.end(), 1 << (precision_bits - 1));
    auto taps = static_cast<std::size_t>(y);
    const int32_t* k = &vertical.weight[taps * static_cast<std::size_t>(vertical.taps)];
    for (int t = 0; t < vertical.count[taps]; ++t) {
      const uint8_t* row = &mid[static_cast<std::size_t>(vertical.start[taps] - row0 + t) * line_bytes];
      int32_t w = k[t];
      for (std::size_t i = 0; i < line_bytes; ++i)
        sums[i] += row[i] * w;
    }
    for (std::size_t i = 0; i < line_bytes; ++i)
      rgb_line[i] = clip8(sums[i]);
    for (int x = 0; x < cw; ++x)
      store(p, &rgb_line[static_cast<std::size_t>(x) * 3], static_cast<std::size_t>(y),
            static_cast<std::size_t>(x), out);
  }
  return caf::none;
}

} // namespace actorserve
