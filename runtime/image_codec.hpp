// Decoding encoded images (JPEG through libjpeg-turbo's TurboJPEG API, PNG through libpng's
// simplified API) into 8-bit RGB, safely: the dimensions are read from the header and checked
// against a pixel limit before any pixel memory is allocated (decompression bombs), and
// truncated or corrupt data is an error, not a partly grey image. A JPEG much larger than
// needed is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (what Pillow's draft() and
// libvips' shrink-on-load do), which skips most of the decoding work.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

namespace actorserve {

struct decode_limits {
  uint64_t max_pixels = 40'000'000; // width x height as the header declares it
  // > 0: a JPEG may be decoded at a DCT scale (1/2, 1/4, 1/8) that keeps its shorter side at
  // least this long; 0: always at full size.
  uint32_t min_shorter_side = 0;
};

/// "jpeg", "png", or "" for anything else (by the first bytes).
std::string_view image_format(std::string_view data);

/// A decoded image as it travels between stages (one BYTES element): a 4-byte height and a
/// 4-byte width (little-endian), then 8-bit RGB pixels, rows top to bottom, interleaved (HWC).
/// Grey images become RGB; an alpha channel is dropped (as Pillow's convert("RGB") does).
struct packed_image_view {
  uint32_t height = 0;
  uint32_t width = 0;
  const uint8_t* pixels = nullptr;
};
constexpr std::size_t packed_image_header = 8;

/// Decodes a JPEG or PNG into a packed image. Errors (errc::invalid_input, or
/// errc::payload_too_large past the pixel limit) say what was wrong: not an image, an
/// unsupported kind, truncated or corrupt data.
caf::expected<std::vector<uint8_t>> decode_image(std::string_view data,
                                                 const decode_limits& limits);

/// The same into `out`, reusing its memory (a thread's buffer for one image after another).
caf::error decode_image_into(std::string_view data, const decode_limits& limits,
                             std::vector<uint8_t>& out);

/// An empty packed image of height x width (pixels to be written after the header).
std::vector<uint8_t> packed_image(uint32_t height, uint32_t width);

/// The view of a packed image; errc::invalid_input when `element` is not one.
caf::expected<packed_image_view> unpack_image(std::string_view element);

} // namespace actorserve
