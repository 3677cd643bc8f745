// The image pipeline (fetch, then preprocess) against an origin web server the Python driver
// runs on loopback (tests/integration/python/image_pipeline_test.py): outputs equal to
// torchvision's, the per-host connection bound as the origin sees it, every failure's status and
// message, downloads stopped when their client leaves, the node serving throughout, and stopping
// cleanly after; with TorchScript, the images fed straight into a model as PyTorch would.
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace actorserve::itest;

namespace {

/// With TorchScript: "classify", the same stages feeding the test convnet ([3, 24, 24] -> 10).
std::string classify_models() {
  if (!ACTORSERVE_HAVE_TORCH)
    return "";
  return R"({"name": "convnet", "backend": "torchscript", "path": ")" + models_dir()
         + R"(/convnet.pt", "max_batch_size": 8,
      "inputs": [{"name": "input", "datatype": "FP32", "dims": [3, 24, 24]}],
      "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}]},
    {"name": "classify", "max_batch_size": 8,
      "inputs": [{"name": "images", "datatype": "BYTES", "dims": []}],
      "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}],
      "pipeline": [
        {"stage": "fetch", "parameters": {"allow": ["127.0.0.1/32"]},
         "inputs": {"images": "images"}, "outputs": {"images": "encoded"}},
        {"stage": "preprocess", "parameters": {"resize": 28, "crop_height": 24, "crop_width": 24},
         "inputs": {"images": "encoded"}, "outputs": {"pixels": "pixels"}},
        {"model": "convnet", "inputs": {"input": "pixels"}, "outputs": {"logits": "logits"}}]},
    )";
}

std::string image_config() {
  return R"({"server": {"http": {"port": 0}, "grpc": {"enabled": false}},
    "models": [)" + classify_models() + R"({"name": "preprocess", "max_batch_size": 0,
      "inputs": [{"name": "images", "datatype": "BYTES", "dims": [-1]}],
      "outputs": [{"name": "pixels", "datatype": "FP32", "dims": [-1, 3, 224, 224]}],
      "pipeline": [
        {"stage": "fetch", "parameters": {"allow": ["127.0.0.1/32"], "max_per_host": 4,
           "timeout_ms": 1500, "retries": 0, "max_bytes": 2097152, "max_redirects": 3},
         "inputs": {"images": "images"}, "outputs": {"images": "encoded"}},
        {"stage": "preprocess", "parameters": {"threads": 2, "max_pixels": 50000000},
         "inputs": {"images": "encoded"}, "outputs": {"pixels": "pixels"}}]},
      {"name": "via_decode", "max_batch_size": 0,
      "inputs": [{"name": "images", "datatype": "BYTES", "dims": [-1]}],
      "outputs": [{"name": "pixels", "datatype": "FP32", "dims": [-1, 3, 224, 224]}],
      "pipeline": [
        {"stage": "fetch", "parameters": {"allow": ["127.0.0.1/32"]},
         "inputs": {"images": "images"}, "outputs": {"images": "encoded"}},
        {"stage": "decode", "parameters": {"threads": 2},
         "inputs": {"images": "encoded"}, "outputs": {"images": "rgb"}},
        {"stage": "preprocess", "inputs": {"images": "rgb"}, "outputs": {"pixels": "pixels"}}]}]})";
}

} // namespace

TEST_CASE("the image pipeline fetches, decodes and preprocesses as torchvision does, and fails "
          "each bad item clearly",
          "[integration][images]") {
  server_process srv{write_temp_file("images.json", image_config())};
  REQUIRE(srv.wait_ready());
  auto out = run_command({std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                          std::string(ACTORSERVE_SOURCE_DIR)
                            + "/tests/integration/python/image_pipeline_test.py",
                          std::to_string(srv.port()),
                          ACTORSERVE_HAVE_TORCH ? models_dir() + "/convnet.pt" : ""});
  INFO(out.second);
  INFO(srv.log());
  CHECK(out.first == 0);
  CHECK(out.second.find("image pipeline: ok") != std::string::npos);
  CHECK(srv.running());
  // The stages stop with the node (their pending timeouts once held its shutdown for 5 s).
  CHECK(srv.stop() == 0);
  CHECK(srv.log().find("actors still running") == std::string::npos);
}
