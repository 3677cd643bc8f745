// Image decoding and preprocessing (the image stages' work on images from anywhere) on any
// bytes: the first byte picks a pixel limit and a DCT shrink, the rest is the image. A decoded
// image must be whole (its header's size), preprocessing it must stay in bounds, and nothing may
// crash, leak or allocate past the limit.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/image_codec.hpp"
#include "runtime/image_resize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace actorserve;
  if (size < 1)
    return 0;
  decode_limits limits;
  limits.max_pixels = data[0] & 1 ? 1u << 20 : 1u << 16;
  limits.min_shorter_side = (data[0] & 2) ? 16 : 0;
  std::string_view image(reinterpret_cast<const char*>(data + 1), size - 1);
  auto packed = decode_image(image, limits);
  if (!packed)
    return 0;
  auto view = unpack_image({reinterpret_cast<const char*>(packed->data()), packed->size()});
  if (!view || static_cast<uint64_t>(view->height) * view->width > limits.max_pixels)
    __builtin_trap(); // (a decoded image that does not hold together, or past the limit)
  image_prep prep;
  prep.resize_shorter = (data[0] & 4) ? 0 : 24;
  prep.crop_height = 16;
  prep.crop_width = 20;
  prep.fp16 = data[0] & 8;
  std::vector<uint8_t> out(prepared_bytes(prep));
  (void)prepare_image(*view, prep, out.data());
  return 0;
}
