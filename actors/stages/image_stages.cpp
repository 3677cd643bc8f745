// The image stages "decode" and "preprocess", registered as any user's stage is (runtime/stage.hpp)
// and run as item stages (actors/item_stage.hpp): each image on one of the stage's own threads.
//
//   decode:     images BYTES (encoded JPEG or PNG)  -> images BYTES (packed RGB, image_codec.hpp)
//   preprocess: images BYTES (packed RGB, or encoded: decoded on the way, with no copy of the
//               pixels between stages) -> pixels FP32/FP16 [3, H, W] (or [H, W, 3])
#include <thread>

#include "actors/item_stage.hpp"
#include "runtime/error.hpp"
#include "runtime/image_codec.hpp"
#include "runtime/image_resize.hpp"

namespace actorserve {
namespace {

uint32_t default_threads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

/// The stage's own threads (both stages take the parameter).
uint32_t read_threads(stage_parameters& p) {
  return static_cast<uint32_t>(p.integer("threads", default_threads(), 1, 256));
}

/// The decoding parameters both stages take.
decode_limits read_decode_limits(stage_parameters& p) {
  decode_limits d;
  d.max_pixels = static_cast<uint64_t>(p.integer("max_pixels", 40'000'000, 1, 1'000'000'000));
  d.min_shorter_side = static_cast<uint32_t>(p.integer("shrink_to", 0, 0, 65535));
  return d;
}


tensor_spec bytes_spec(const char* name) {
  tensor_spec s;
  s.name = name;
  s.dtype = datatype::BYTES;
  return s;
}

// --- decode -----------------------------------------------------------------------------------

stage_signature describe_decode(stage_parameters& p) {
  read_decode_limits(p);
  read_threads(p);
  return {{bytes_spec("images")}, {bytes_spec("images")}};
}

stage_actor spawn_decode(caf::actor_system& sys, stage_context& ctx) {
  auto limits = read_decode_limits(ctx.parameters);
  item_stage_spec spec;
  spec.name = ctx.name;
  spec.metrics = &stage_metrics::for_stage(ctx.name, "decode");
  spec.outputs = {bytes_spec("images")};
  spec.threads = read_threads(ctx.parameters);
  spec.work = [limits](const stage_input& item) -> caf::expected<item_parts> {
    auto packed = decode_image(only_element(item.tensors.front()), limits);
    if (!packed)
      return std::move(packed.error());
    return item_parts{std::move(*packed)};
  };
  return spawn_item_stage(sys, std::move(spec));
}

// --- preprocess -------------------------------------------------------------------------------

image_prep read_prep(stage_parameters& p) {
  image_prep r;
  r.resize_shorter = static_cast<uint32_t>(p.integer("resize", 256, 0, 16384));
  r.crop_height = static_cast<uint32_t>(p.integer("crop_height", 224, 1, 16384));
  r.crop_width = static_cast<uint32_t>(p.integer("crop_width", 224, 1, 16384));
  auto mean = p.numbers("mean", {0.485, 0.456, 0.406}, 3);
  auto stdev = p.numbers("std", {0.229, 0.224, 0.225}, 3);
  for (std::size_t c = 0; c < 3; ++c) {
    r.mean[c] = static_cast<float>(mean[c]);
    r.stdev[c] = static_cast<float>(stdev[c]);
    if (stdev[c] == 0.0)
      p.fail("std", "must not be 0");
  }
  r.fp16 = p.string("datatype", "FP32", {"FP32", "FP16"}) == "FP16";
  r.nhwc = p.string("layout", "NCHW", {"NCHW", "NHWC"}) == "NHWC";
  return r;
}

tensor_spec pixels_spec(const image_prep& r) {
  tensor_spec s;
  s.name = "pixels";
  s.dtype = r.fp16 ? datatype::FP16 : datatype::FP32;
  int64_t h = r.crop_height, w = r.crop_width;
  s.dims = r.nhwc ? std::vector<int64_t>{h, w, 3} : std::vector<int64_t>{3, h, w};
  return s;
}

stage_signature describe_preprocess(stage_parameters& p) {
  auto r = read_prep(p);
  read_decode_limits(p);
  read_threads(p);
  return {{bytes_spec("images")}, {pixels_spec(r)}};
}

caf::expected<item_parts> preprocess_item(const image_prep& prep, const decode_limits& limits,
                                          std::string_view element) {
  // (An encoded image is decoded into this thread's buffer, reused image after image.)
  thread_local std::vector<uint8_t> decoded;
  if (!image_format(element).empty()) {
    if (auto err = decode_image_into(element, limits, decoded))
      return err;
    element = {reinterpret_cast<const char*>(decoded.data()), decoded.size()};
  }
  auto img = unpack_image(element);
  if (!img)
    return make_error(errc::invalid_input, "not a JPEG, PNG or decoded image ("
                                             + std::to_string(element.size()) + " bytes)");
  std::vector<uint8_t> out(prepared_bytes(prep));
  auto err = prepare_image(*img, prep, out.data());
  if (decoded.capacity() > (32u << 20)) // (a huge image's buffer is not kept)
    std::vector<uint8_t>().swap(decoded);
  if (err)
    return err;
  return item_parts{std::move(out)};
}

stage_actor spawn_preprocess(caf::actor_system& sys, stage_context& ctx) {
  auto prep = read_prep(ctx.parameters);
  auto limits = read_decode_limits(ctx.parameters);
  item_stage_spec spec;
  spec.name = ctx.name;
  spec.metrics = &stage_metrics::for_stage(ctx.name, "preprocess");
  spec.outputs = {pixels_spec(prep)};
  spec.threads = read_threads(ctx.parameters);
  spec.work = [prep, limits](const stage_input& item) {
    return preprocess_item(prep, limits, only_element(item.tensors.front()));
  };
  return spawn_item_stage(sys, std::move(spec));
}

stage_registrar decode_registrar{"decode", {describe_decode, spawn_decode}};
stage_registrar preprocess_registrar{"preprocess", {describe_preprocess, spawn_preprocess}};

} // namespace
} // namespace actorserve
