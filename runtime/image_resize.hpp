// The image preprocessing PyTorch models are trained with, computed as the reference computes it:
// torchvision's Resize(shorter side) on a PIL image (Pillow's bilinear resampling, with its
// antialiasing support widening, its 22-bit fixed-point coefficients and its 8-bit rounding
// after each pass), CenterCrop (Python's round-half-even offsets), ToTensor and Normalize in
// float32. The output therefore equals the reference (tests/unit/image_resize_test.cpp checks it
// against values torchvision computed). Only the pixels inside the crop are computed.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <caf/error.hpp>

#include "runtime/image_codec.hpp"

namespace actorserve {

struct image_prep {
  uint32_t resize_shorter = 256; // the shorter side after resizing; 0: no resize
  uint32_t crop_height = 224;    // the centre crop: every output is this size
  uint32_t crop_width = 224;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f}; // after dividing by 255
  std::array<float, 3> stdev{0.229f, 0.224f, 0.225f};
  bool fp16 = false; // FP16 output instead of FP32
  bool nhwc = false; // HWC output instead of CHW
};

/// The size of a `height` x `width` image after torchvision's Resize(resize_shorter).
std::pair<uint32_t, uint32_t> resized_size(uint32_t height, uint32_t width, uint32_t shorter);

/// Bytes of one prepared image.
std::size_t prepared_bytes(const image_prep& p);

/// Resizes, crops and normalizes `img` into `out` (prepared_bytes(p)). An error
/// (errc::invalid_input) when the resized image is smaller than the crop.
caf::error prepare_image(const packed_image_view& img, const image_prep& p, uint8_t* out);

} // namespace actorserve
