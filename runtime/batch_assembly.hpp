// Checking a request against its model's declared inputs, and turning requests into one batch
// and a batch's outputs back into per-request outputs. Pure functions, used by the gateway
// (validation) and by workers (assembly, on their own threads).
#pragma once

#include <string>
#include <vector>

#include <caf/error.hpp>

#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace actorserve {

/// Checks inputs (names, datatypes, ranks, dims, byte sizes, batch dimension against
/// max_batch_size) and requested outputs. The error (errc::invalid_input) names the tensor, what
/// was expected and what came. Also reorders `req.inputs` into the model's declared order.
caf::error validate_request(const model_config& model, infer_request& req);

/// The request's batch dimension (1 when the model does not batch). Call after validation.
uint32_t request_rows(const model_config& model, const infer_request& req);

/// Requests share a batch only when their keys are equal: the non-batch dimensions of every input.
std::string shape_key(const model_config& model, const infer_request& req);

/// One input of a batch as views of its requests' tensors, concatenated along the batch
/// dimension only when a backend copies them (straight into its staging buffer, if it has one).
struct batch_input {
  std::string name;
  datatype dtype = datatype::FP32;
  std::vector<int64_t> shape;        // the whole batch's
  std::vector<const tensor*> parts;  // each request's tensor, in batch order

  std::size_t bytes() const;
  /// Writes bytes() bytes to `dst`; with `threads` > 1 and enough bytes, the parts are copied
  /// by that many threads at once (a GPU worker staging a large batch into pinned memory).
  void copy_to(uint8_t* dst, unsigned threads = 1) const;
  tensor concatenate() const;
};

/// Views of the requests' inputs, in the model's input order (requests must stay alive while
/// the views are used). With max_batch_size 0 there must be exactly one request.
std::vector<batch_input> gather_batch(const model_config& model,
                                      const std::vector<infer_request>& requests);

/// Views of already assembled batch inputs, one part each (for a backend whose run() goes
/// through its start()). `inputs` must outlive the views.
std::vector<batch_input> views_of(const std::vector<tensor>& inputs);

/// Concatenates the requests' inputs along the batch dimension, in the model's input order.
/// With max_batch_size 0 there must be exactly one request, whose inputs are used as they are.
std::vector<tensor> assemble_batch(const model_config& model,
                                   const std::vector<infer_request>& requests);

/// Splits batch outputs back per request (by each request's rows), keeping only the outputs each
/// request asked for. Throws std::runtime_error when the backend's outputs do not match the model's
/// declared outputs (count, datatype, batch dimension).
std::vector<std::vector<tensor>> split_batch(const model_config& model,
                                             const std::vector<infer_request>& requests,
                                             std::vector<tensor>&& outputs);

/// Checks what a worker (perhaps in another process or on another node) sent back for a batch
/// of `requests` requests before any of it reaches a client: one list of outputs per request,
/// each a declared output with its declared datatype and bytes that match its shape. The error
/// (errc::worker_failed) names the first thing that does not fit.
caf::error check_batch_outputs(const model_config& model, std::size_t requests,
                               const batch_outputs& out);

/// Zero-filled inputs for a warm-up batch of `rows` (variable dimensions set to 1).
std::vector<tensor> warmup_inputs(const model_config& model, uint32_t rows);

} // namespace actorserve
