// The per-pixel arithmetic of image preprocessing (uint8 HWC -> normalized planar float), shared
// by the CPU implementation (image_preprocess.cpp) and the CUDA kernel (cuda/image_preprocess.cu)
// so that both compute the same numbers: every multiply-add is an explicit fmaf, and the kernel
// is compiled without FMA contraction, so the two agree bit for bit in fp32.
// Plain C++ with no library types: nvcc compiles it too.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ACTORSERVE_HD __host__ __device__ __forceinline__
#else
#define ACTORSERVE_HD inline
#endif

namespace actorserve {

/// One image batch's transform: y[c][oy][ox] = (sample(x, c, oy, ox) * scale - mean[c]) / std[c],
/// sampling bilinearly (half-pixel centres, as PyTorch's interpolate with align_corners=False)
/// when the output size differs from the input's.
struct image_transform {
  int in_h = 0, in_w = 0;   // source: uint8 [in_h, in_w, 3]
  int out_h = 0, out_w = 0; // destination: [3, out_h, out_w]
  float scale = 1.0f / 255.0f;
  float mean[3] = {0, 0, 0};
  float inv_std[3] = {1, 1, 1};
  int out_nhwc = 0; // 1: write [out_h, out_w, 3] per image (channels-last) instead of [3, H, W]
};

/// Where element (image i, channel c, y, x) of the output goes.
ACTORSERVE_HD long output_index(const image_transform& t, long i, int c, int y, int x) {
  return t.out_nhwc ? ((i * t.out_h + y) * t.out_w + x) * 3 + c
                    : ((i * 3 + c) * t.out_h + y) * static_cast<long>(t.out_w) + x;
}

/// Element types the transform writes.
enum class image_dtype : int { f32 = 0, f16 = 1, bf16 = 2 };

namespace detail {

ACTORSERVE_HD float source_coord(int o, int in, int out, int& i0, int& i1) {
  float s = fmaf(static_cast<float>(o) + 0.5f, static_cast<float>(in) / static_cast<float>(out),
                 -0.5f);
  if (s < 0.0f)
    s = 0.0f;
  i0 = static_cast<int>(s);
  if (i0 > in - 1)
    i0 = in - 1;
  i1 = i0 + 1 < in ? i0 + 1 : in - 1;
  return s - static_cast<float>(i0);
}

} // namespace detail

/// The transformed value of channel `c` at output pixel (oy, ox) of one image.
ACTORSERVE_HD float transform_pixel(const uint8_t* img, const image_transform& t, int c, int oy,
                                    int ox) {
  float v;
  if (t.out_h == t.in_h && t.out_w == t.in_w) {
    v = static_cast<float>(img[(oy * t.in_w + ox) * 3 + c]);
  } else {
    int y0, y1, x0, x1;
    float ly = detail::source_coord(oy, t.in_h, t.out_h, y0, y1);
    float lx = detail::source_coord(ox, t.in_w, t.out_w, x0, x1);
    float p00 = img[(y0 * t.in_w + x0) * 3 + c], p01 = img[(y0 * t.in_w + x1) * 3 + c];
    float p10 = img[(y1 * t.in_w + x0) * 3 + c], p11 = img[(y1 * t.in_w + x1) * 3 + c];
    float top = fmaf(lx, p01 - p00, p00);
    float bottom = fmaf(lx, p11 - p10, p10);
    v = fmaf(ly, bottom - top, top);
  }
  return (fmaf(v, t.scale, -t.mean[c])) * t.inv_std[c];
}

} // namespace actorserve
