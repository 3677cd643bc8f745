#include "runtime/image_codec.hpp"

#include <csetjmp>
#include <cstring>
#include <memory>

#include <png.h>
#include <turbojpeg.h>

#include "runtime/error.hpp"

namespace actorserve {
namespace {

caf::error bad_image(const std::string& what) {
  return make_error(errc::invalid_input, what);
}

caf::error too_many_pixels(uint64_t w, uint64_t h, uint64_t limit) {
  return make_error(errc::payload_too_large,
                    "the image is " + std::to_string(w) + "x" + std::to_string(h) + " pixels ("
                      + std::to_string(w * h) + "), more than the limit of "
                      + std::to_string(limit) + " (parameter max_pixels)");
}

void put_u32(uint8_t* p, uint32_t x) {
  std::memcpy(p, &x, 4);
}

/// Makes `out` a packed image of height x width, reusing its memory (only bytes it did not have
/// before are zeroed: a buffer reused for images of similar sizes costs no memset).
void repack(std::vector<uint8_t>& out, uint32_t height, uint32_t width) {
  out.resize(packed_image_header + static_cast<std::size_t>(height) * width * 3);
  put_u32(out.data(), height);
  put_u32(out.data() + 4, width);
}

// --- JPEG -------------------------------------------------------------------------------------

struct tj_closer {
  void operator()(void* h) const { tjDestroy(h); }
};

/// A decompressor per thread (TurboJPEG handles are not thread-safe; making one costs ~µs).
tjhandle thread_decompressor() {
  thread_local std::unique_ptr<void, tj_closer> handle{tjInitDecompress()};
  return handle.get();
}

/// The DCT scale for a w x h JPEG: the smallest of 1/8, 1/4, 1/2 that keeps the shorter side at
/// least `min_side`, or 1/1.
tjscalingfactor dct_scale(int w, int h, uint32_t min_side) {
  tjscalingfactor full{1, 1};
  if (min_side == 0)
    return full;
  for (int denom : {8, 4, 2}) {
    tjscalingfactor f{1, denom};
    if (static_cast<uint32_t>(std::min(TJSCALED(w, f), TJSCALED(h, f))) >= min_side)
      return f;
  }
  return full;
}

caf::error decode_jpeg(std::string_view data, const decode_limits& limits,
                       std::vector<uint8_t>& out) {
  auto* tj = thread_decompressor();
  if (!tj)
    return make_error(errc::internal, "TurboJPEG could not start a decompressor");
  auto* src = reinterpret_cast<const unsigned char*>(data.data());
  auto size = static_cast<unsigned long>(data.size());
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, src, size, &w, &h, &subsamp, &colorspace) != 0)
    return bad_image(std::string("not a readable JPEG: ") + tjGetErrorStr2(tj));
  if (w <= 0 || h <= 0)
    return bad_image("the JPEG declares no pixels");
  if (static_cast<uint64_t>(w) * static_cast<uint64_t>(h) > limits.max_pixels)
    return too_many_pixels(static_cast<uint64_t>(w), static_cast<uint64_t>(h), limits.max_pixels);
  auto scale = dct_scale(w, h, limits.min_shorter_side);
  auto sw = TJSCALED(w, scale), sh = TJSCALED(h, scale);
  repack(out, static_cast<uint32_t>(sh), static_cast<uint32_t>(sw));
  // Truncated or corrupt data makes libjpeg warn and fill in grey: STOPONWARNING makes it an
  // error. LIMITSCANS refuses progressive JPEGs with absurd scan counts (a CPU bomb).
  int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (tjDecompress2(tj, src, size, out.data() + packed_image_header, sw, 0, sh, TJPF_RGB, flags)
      != 0)
    return bad_image(std::string("the JPEG is corrupt or truncated: ") + tjGetErrorStr2(tj));
  return caf::none;
}

// --- PNG --------------------------------------------------------------------------------------

struct png_source {
  std::string_view data;
  std::size_t at = 0;
  char message[256] = {0};
  jmp_buf jump;
};

void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<png_source*>(png_get_io_ptr(png));
  if (s->data.size() - s->at < n)
    png_error(png, "the PNG data ends early (truncated)");
  std::memcpy(out, s->data.data() + s->at, n);
  s->at += n;
}

void png_fail(png_structp png, png_const_charp message) {
  auto* s = static_cast<png_source*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  std::longjmp(s->jump, 1);
}

void png_warn(png_structp, png_const_charp) {
  // (Warnings, such as a bad CRC in an ancillary chunk, do not stop the image, as in Pillow.)
}

/// The part of the PNG decoding that libpng may jump out of (longjmp): this frame holds only C
/// types; the vectors it fills live in the caller's. Returns 0 on success, 1 on a libpng error
/// (message in `src`), 2 past the pixel limit (`dims` then say the size).
int read_png(png_structp png, png_infop info, png_source& src, uint64_t max_pixels,
             std::vector<uint8_t>* out, std::vector<png_bytep>* rows, uint32_t* dims) {
  if (setjmp(src.jump))
    return 1;
  png_set_read_fn(png, &src, png_read_memory);
  png_read_info(png, info);
  auto w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  dims[0] = h;
  dims[1] = w;
  if (static_cast<uint64_t>(w) * h > max_pixels) // (before anything is allocated for pixels)
    return 2;
  auto color = png_get_color_type(png, info);
  png_set_expand(png);   // palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha
  png_set_strip_16(png); // 16 -> 8 bits, the high byte (as Pillow)
  png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
    png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<png_size_t>(w) * 3)
    png_error(png, "unsupported PNG layout");
  repack(*out, h, w);
  rows->resize(h);
  for (uint32_t y = 0; y < h; ++y)
    (*rows)[y] = out->data() + packed_image_header + static_cast<std::size_t>(y) * w * 3;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  return 0;
}

caf::error decode_png(std::string_view data, const decode_limits& limits,
                      std::vector<uint8_t>& out) {
  png_source src;
  src.data = data;
  auto* png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_read_struct(&png, &info, nullptr);
    return make_error(errc::internal, "libpng could not start a reader");
  }
  // libpng's own limits: image dimensions and the memory any one chunk may take (a zTXt or
  // iCCP chunk that inflates to gigabytes is a decompression bomb too).
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_set_chunk_malloc_max(png, 8u << 20);
  png_set_chunk_cache_max(png, 128);
  std::vector<png_bytep> rows;
  uint32_t dims[2] = {0, 0};
  int rc = read_png(png, info, src, limits.max_pixels, &out, &rows, dims);
  png_destroy_read_struct(&png, &info, nullptr);
  if (rc == 2)
    return too_many_pixels(dims[1], dims[0], limits.max_pixels);
  if (rc != 0)
    return bad_image(std::string(dims[0] ? "the PNG is corrupt or truncated: "
                                         : "not a readable PNG: ")
                     + src.message);
  return caf::none;
}

} // namespace

std::string_view image_format(std::string_view data) {
  if (data.size() >= 3 && static_cast<uint8_t>(data[0]) == 0xFF
      && static_cast<uint8_t>(data[1]) == 0xD8 && static_cast<uint8_t>(data[2]) == 0xFF)
    return "jpeg";
  if (data.size() >= 8 && std::memcmp(data.data(), "\x89PNG\r\n\x1a\n", 8) == 0)
    return "png";
  return "";
}

caf::error decode_image_into(std::string_view data, const decode_limits& limits,
                             std::vector<uint8_t>& out) {
  auto format = image_format(data);
  if (format == "jpeg")
    return decode_jpeg(data, limits, out);
  if (format == "png")
    return decode_png(data, limits, out);
  return bad_image("not a JPEG or PNG image (" + std::to_string(data.size())
                   + " bytes that start with neither's signature)");
}

caf::expected<std::vector<uint8_t>> decode_image(std::string_view data,
                                                 const decode_limits& limits) {
  std::vector<uint8_t> out;
  if (auto err = decode_image_into(data, limits, out))
    return err;
  return out;
}

std::vector<uint8_t> packed_image(uint32_t height, uint32_t width) {
  std::vector<uint8_t> out;
  repack(out, height, width);
  return out;
}

caf::expected<packed_image_view> unpack_image(std::string_view element) {
  packed_image_view v;
  if (element.size() < packed_image_header)
    return bad_image("not a decoded image (" + std::to_string(element.size()) + " bytes)");
  std::memcpy(&v.height, element.data(), 4);
  std::memcpy(&v.width, element.data() + 4, 4);
  auto need = static_cast<uint64_t>(v.height) * v.width * 3 + packed_image_header;
  if (v.height == 0 || v.width == 0 || need != element.size())
    return bad_image("not a decoded image: " + std::to_string(v.height) + "x"
                     + std::to_string(v.width) + " pixels in " + std::to_string(element.size())
                     + " bytes (a \"decode\" stage's output is expected)");
  v.pixels = reinterpret_cast<const uint8_t*>(element.data()) + packed_image_header;
  return v;
}

} // namespace actorserve
