// KServe v2 / Open Inference Protocol bodies <-> actorserve messages: JSON tensors (flat or
// nested row-major `data`) and the binary tensor data extension (Inference-Header-Content-Length,
// binary_data_size, binary_data / binary_data_output). Pure functions; errors name the tensor.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>
#include <caf/expected.hpp>

#include "net/kserve/client_shm.hpp"
#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace actorserve::kserve {

/// An output the request asked for in shared memory (Triton's system shared memory extension).
struct shm_output {
  std::string name;
  std::shared_ptr<const shm_region> region;
  uint64_t offset = 0;
  uint64_t byte_size = 0; // the room given: the output may be smaller, not larger
};

/// An output asked for as its top classes (Triton's classification extension): answered as
/// BYTES strings "value:index[:label]", `count` per row, highest value first.
struct classification {
  std::string output;
  uint32_t count = 0;
  const std::vector<std::string>* labels = nullptr; // the output's labels (set by the server)
  bool batched = true; // the model batches: the first dimension is rows (set by the server)
};

struct decoded_request {
  infer_request request;
  bool binary_output_default = false;      // request parameter binary_data_output
  std::vector<std::string> binary_outputs; // outputs that asked for binary_data: true
  std::vector<std::string> json_outputs;   // outputs that asked for binary_data: false
  bool timing = false;                     // request parameter timing: add a timing breakdown
  std::vector<shm_output> shm_outputs;     // outputs that go to shared memory regions
  bool cache_hit = false;                  // answered from the model's response cache
  std::vector<classification> classifications;
  bool want_binary(const std::string& output) const;
  const shm_output* in_shm(const std::string& output) const;
};

/// Memory a request's JSON document may take while it is parsed: counted in `used` for as long
/// as the document lives, and refused past `limit`. A parsed document takes many times the bytes
/// of its text (a 32 MB body of small numbers took 820 MB), so the node counts it in its budget
/// for request bodies (http.max_inflight_body_bytes) rather than let concurrent JSON bodies
/// exhaust its memory.
struct memory_budget {
  std::atomic<uint64_t>* used = nullptr;
  uint64_t limit = 0;
  uint64_t own = 0; // of `used`, what this request holds already (its body)
};

/// Decodes an infer request body. `json_length` is the Inference-Header-Content-Length header
/// when present (the JSON part is then followed by the binary tensor data). With `body_owner`,
/// which keeps `body` alive, binary tensors are views of the body instead of copies of it. With
/// `budget`, a document that would take more memory than it has left is refused: overloaded
/// while other requests hold the rest, payload_too_large when it could never fit. With `shm`,
/// inputs and outputs may name shared memory regions registered there (shared_memory_region,
/// shared_memory_byte_size, shared_memory_offset); such inputs are read from their region then
/// (their bytes count in `budget` too); without it, naming a region is an error.
caf::expected<decoded_request> decode_request(std::string_view body,
                                              std::optional<std::size_t> json_length,
                                              std::shared_ptr<const void> body_owner = {},
                                              const memory_budget* budget = nullptr,
                                              const shm_registry* shm = nullptr);

/// The body of POST /v2/systemsharedmemory/region/{name}/register.
struct shm_registration {
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

/// Decodes {"key": "/name", "offset": bytes (optional), "byte_size": bytes}; the error
/// (invalid_input) says what is wrong with it.
caf::expected<shm_registration> decode_shm_registration(std::string_view body);

/// Decodes a model's instances set at run time: {"instances": n} (min = max = n), or
/// {"min_instances": a, "max_instances": b}; the error (invalid_input) says what is wrong.
caf::expected<std::pair<uint32_t, uint32_t>> parse_instances_request(std::string_view body);

/// Writes the response's outputs that `req` asked for in shared memory into their regions; an
/// error (invalid_input) names an output larger than the room its request gave it, or a region
/// that can no longer take it.
caf::error write_shm_outputs(const infer_response& r, const decoded_request& req);

struct encoded_response {
  std::string body;
  std::optional<std::size_t> json_length; // set when binary data follows the JSON
};

/// Encodes an infer response; outputs go binary where `req` asked for it, and are only described
/// (region, size) where it asked for shared memory (written there by write_shm_outputs). `total_ns` is the
/// server-side time of the request, reported when it asked for timing.
encoded_response encode_response(const infer_response& r, const decoded_request& req,
                                 int64_t total_ns = 0);

/// Appends the tensor's elements as JSON numbers/booleans, row-major, flat: "[1,2,3]".
void append_json_data(std::string& out, const tensor& t);

/// Converts JSON `data` (flat or nested arrays) into the tensor's byte buffer; the error names
/// `t.name` and says what was expected.
caf::error json_data_to_tensor(const boost::json::value& data, tensor& t);

/// The model's platform as the protocol's metadata names it ("pytorch_torchscript", "ensemble").
std::string platform_of(const model_config& m);

/// Model metadata as the protocol defines it (name, versions, platform, inputs, outputs).
std::string encode_model_metadata(const model_config& m);

/// The model's configuration as NVIDIA Triton's model configuration extension shows it
/// (GET /v2/models/{m}/config: name, platform, backend, max_batch_size, input and output with
/// TYPE_ datatypes and dims without the batch dimension, instance_group, dynamic_batching,
/// parameters), for Triton's clients and tools (get_model_config).
std::string encode_model_config(const model_config& m);

/// The protocol's error body: {"error": message}.
std::string error_body(const std::string& message);

/// `s` as a quoted, escaped JSON string (bytes that are not UTF-8 become U+FFFD: json_quote).
std::string quote(std::string_view s);

} // namespace actorserve::kserve
