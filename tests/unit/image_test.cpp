// Image decoding (JPEG, PNG) and the torchvision-equal preprocessing the image stages run.
#include <catch2/catch.hpp>

#include <cstring>

#include <png.h>
#include <turbojpeg.h>

#include "runtime/error.hpp"
#include "runtime/image_codec.hpp"
#include "runtime/image_resize.hpp"
#include "runtime/tensor.hpp"

using namespace actorserve;

namespace {

/// A w x h RGB test pattern (smooth enough that JPEG keeps it close).
std::vector<uint8_t> pattern(int w, int h) {
  std::vector<uint8_t> px(static_cast<std::size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<std::size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>((x * 37 + y * 11) % 256);
      p[1] = static_cast<uint8_t>((x * 5 + y * 53 + 7) % 256);
      p[2] = static_cast<uint8_t>((x * x + y * 3) % 256);
    }
  return px;
}

std::string jpeg_of(int w, int h) {
  auto px = pattern(w, h);
  auto* tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  REQUIRE(tjCompress2(tj, px.data(), w, 0, h, TJPF_RGB, &buf, &size, TJSAMP_444, 95, 0) == 0);
  std::string out(reinterpret_cast<char*>(buf), size);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

std::string png_of(int w, int h, png_uint_32 format, const std::vector<uint8_t>& px) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(w);
  img.height = static_cast<png_uint_32>(h);
  img.format = format;
  png_alloc_size_t size = 0;
  REQUIRE(png_image_write_to_memory(&img, nullptr, &size, 0, px.data(), 0, nullptr));
  std::string out(size, '\0');
  REQUIRE(png_image_write_to_memory(&img, out.data(), &size, 0, px.data(), 0, nullptr));
  out.resize(size);
  return out;
}

uint32_t crc32_of(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t x) {
  return {static_cast<char>(x >> 24), static_cast<char>(x >> 16), static_cast<char>(x >> 8),
          static_cast<char>(x)};
}

/// A PNG whose header declares w x h pixels and whose data is one tiny IDAT: a bomb when large.
std::string png_header_only(uint32_t w, uint32_t h) {
  std::string ihdr = "IHDR" + be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5);
  std::string idat = "IDAT" + std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(crc32_of(ihdr)) + be32(8)
         + idat + be32(crc32_of(idat));
}

packed_image_view view_of(const std::vector<uint8_t>& packed) {
  auto v = unpack_image({reinterpret_cast<const char*>(packed.data()), packed.size()});
  REQUIRE(v);
  return *v;
}

} // namespace

TEST_CASE("preprocessing equals torchvision's Resize, CenterCrop, ToTensor, Normalize",
          "[image]") {
  // torchvision 0.26 on Pillow 13, the 13x9 pattern: Compose([Resize(5), CenterCrop((4, 5)),
  // ToTensor(), Normalize(ImageNet mean, std)]) (values printed by Python, float32).
  const std::vector<float> reference{
    -0.5938008427619934f, 0.5706824660301208f, 0.7419300079345703f, -1.3815395832061768f,
    -0.2170563042163849f, -0.3026800751686096f, 0.8618032336235046f, 1.033050775527954f,
    -1.0904186964035034f, 0.07406462728977203f, 0.0569397434592247f, 1.2214230298995972f,
    -0.35405433177948f, -0.7307989001274109f, 0.43368443846702576f, 0.4165596663951874f,
    1.3412963151931763f, -0.7479236125946045f, -0.37117907404899597f, 0.7933042645454407f,
    -1.195378065109253f, -1.0378150939941406f, -0.8627449870109558f, -0.6876749992370605f,
    -0.5301119685173035f, 0.2577032148838043f, 0.415266215801239f, 0.5903362035751343f,
    0.7654062509536743f, 0.9229692220687866f, 0.9404762387275696f, 1.0980392694473267f,
    1.2731093168258667f, -0.2499999701976776f, -0.7752100229263306f, -0.7577030062675476f,
    -0.6001399755477905f, -0.42506998777389526f, -0.2499999701976776f, -0.09243695437908173f,
    -1.665010929107666f, -1.4732897281646729f, -1.1421349048614502f, -0.6715467572212219f,
    -0.09638336300849915f, -1.5952941179275513f, -1.4035730361938477f, -1.072418212890625f,
    -0.6018299460411072f, -0.026666589081287384f, -1.490718960762024f, -1.2989978790283203f,
    -0.9678431153297424f, -0.4972548186779022f, 0.07790856808423996f, -1.3861438035964966f,
    -1.1944224834442139f, -0.8632679581642151f, -0.3926796615123749f, 0.1824837327003479f};
  auto packed = packed_image(9, 13);
  auto px = pattern(13, 9);
  std::memcpy(packed.data() + packed_image_header, px.data(), px.size());
  image_prep prep;
  prep.resize_shorter = 5;
  prep.crop_height = 4;
  prep.crop_width = 5;
  CHECK(resized_size(9, 13, 5) == std::pair<uint32_t, uint32_t>{5, 7});
  std::vector<float> out(60);
  REQUIRE_FALSE(prepare_image(view_of(packed), prep, reinterpret_cast<uint8_t*>(out.data())));
  CHECK(out == reference); // (exactly: the same arithmetic in the same order)

  // HWC and FP16 are the same values laid out or rounded differently.
  prep.nhwc = true;
  prep.fp16 = true;
  std::vector<uint16_t> half(60);
  REQUIRE_FALSE(prepare_image(view_of(packed), prep, reinterpret_cast<uint8_t*>(half.data())));
  CHECK(half[(1 * 5 + 2) * 3 + 1] == float_to_half(reference[(1 * 4 + 1) * 5 + 2]));

  prep.resize_shorter = 3; // 3x4 after resizing: smaller than the 5x4 crop
  auto err = prepare_image(view_of(packed), prep, reinterpret_cast<uint8_t*>(out.data()));
  CHECK(error_message(err) == "the image is 4x3 pixels after resizing, smaller than the 5x4 crop");
}

TEST_CASE("JPEGs decode to RGB, at a DCT scale when much larger than needed", "[image]") {
  auto jpeg = jpeg_of(64, 48);
  CHECK(image_format(jpeg) == "jpeg");
  auto full = decode_image(jpeg, {});
  REQUIRE(full);
  auto v = view_of(*full);
  CHECK(v.width == 64);
  CHECK(v.height == 48);
  auto px = pattern(64, 48);
  int far = 0; // (quality 95, 4:4:4: close to the original everywhere)
  for (std::size_t i = 0; i < px.size(); ++i)
    far += std::abs(int{v.pixels[i]} - int{px[i]}) > 24;
  CHECK(far < static_cast<int>(px.size() / 50));

  decode_limits shrink;
  shrink.min_shorter_side = 12; // 1/4 keeps the shorter side at 12
  auto small = decode_image(jpeg, shrink);
  REQUIRE(small);
  CHECK(view_of(*small).width == 16);
  CHECK(view_of(*small).height == 12);
  shrink.min_shorter_side = 13; // only 1/2 keeps 13
  CHECK(view_of(*decode_image(jpeg, shrink)).height == 24);
}

TEST_CASE("images that are broken, too large or not images are errors", "[image]") {
  auto jpeg = jpeg_of(64, 48);
  auto truncated = decode_image(jpeg.substr(0, jpeg.size() / 2), {});
  REQUIRE_FALSE(truncated);
  CHECK(error_code(truncated.error()) == errc::invalid_input);
  CHECK(error_message(truncated.error()).find("the JPEG is corrupt or truncated") == 0);

  decode_limits tiny;
  tiny.max_pixels = 1000;
  auto big = decode_image(jpeg, tiny);
  REQUIRE_FALSE(big);
  CHECK(error_code(big.error()) == errc::payload_too_large);
  CHECK(error_message(big.error()) == "the image is 64x48 pixels (3072), more than the limit of "
                                      "1000 (parameter max_pixels)");

  // A PNG bomb: a header declaring 60000 x 60000 pixels over a few bytes of data is refused from
  // its header, before any pixel memory exists.
  auto bomb = decode_image(png_header_only(60000, 60000), {});
  REQUIRE_FALSE(bomb);
  CHECK(error_code(bomb.error()) == errc::payload_too_large);
  CHECK(error_message(bomb.error()).find("60000x60000 pixels") != std::string::npos);
  // The same header at an allowed size: its data ends early.
  auto short_png = decode_image(png_header_only(40, 30), {});
  REQUIRE_FALSE(short_png);
  CHECK(error_message(short_png.error()).find("the PNG is corrupt or truncated") == 0);

  auto text = decode_image("GIF89a not supported", {});
  REQUIRE_FALSE(text);
  CHECK(error_message(text.error())
        == "not a JPEG or PNG image (20 bytes that start with neither's signature)");
  CHECK_FALSE(unpack_image("short"));
}

TEST_CASE("PNGs decode to RGB: grey widened, alpha dropped as Pillow's convert does",
          "[image]") {
  std::vector<uint8_t> ga{10, 255, 200, 0, 30, 128, 250, 7}; // grey+alpha, 2x2
  auto png = png_of(2, 2, PNG_FORMAT_GA, ga);
  CHECK(image_format(png) == "png");
  auto d = decode_image(png, {});
  REQUIRE(d);
  auto v = view_of(*d);
  CHECK(v.width == 2);
  CHECK(v.height == 2);
  std::vector<uint8_t> rgb(v.pixels, v.pixels + 12);
  CHECK(rgb == std::vector<uint8_t>{10, 10, 10, 200, 200, 200, 30, 30, 30, 250, 250, 250});
  auto px = pattern(5, 3);
  auto d2 = decode_image(png_of(5, 3, PNG_FORMAT_RGB, px), {});
  REQUIRE(d2);
  CHECK(std::vector<uint8_t>(view_of(*d2).pixels, view_of(*d2).pixels + px.size()) == px);
}
