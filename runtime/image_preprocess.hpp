// Image preprocessing for models whose clients send raw images: a batch of uint8 HWC images
// becomes one normalized NCHW tensor (fp32, fp16 or bf16), optionally resized. The CPU
// implementation is here; GPU workers run the same transform as a CUDA kernel
// (runtime/cuda/image_preprocess_cuda.hpp) and tests check that the two agree.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/config.hpp"
#include "runtime/image_transform.hpp"

namespace actorserve {

/// The transform a model's `preprocess` settings ask for, for images of in_h x in_w (each at
/// least 1: std::invalid_argument otherwise).
image_transform make_image_transform(const preprocess_settings& p, int in_h, int in_w);

/// Transforms `n` images (uint8 [n, in_h, in_w, 3], contiguous) into `out`
/// ([n, 3, out_h, out_w] of `dtype`, contiguous).
void preprocess_images_cpu(const uint8_t* in, int n, const image_transform& t, image_dtype dtype,
                           void* out);

/// Bytes of one transformed image.
std::size_t transformed_image_bytes(const image_transform& t, image_dtype dtype);

/// bfloat16 conversion (round to nearest even), as the CUDA intrinsics do it.
uint16_t float_to_bfloat16(float value);
float bfloat16_to_float(uint16_t bits);

} // namespace actorserve
