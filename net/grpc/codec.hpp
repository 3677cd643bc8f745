// KServe v2 gRPC messages <-> actorserve messages: inputs as raw_input_contents or typed
// contents, outputs always as raw_output_contents (as Triton answers). Pure functions; errors
// (invalid_input) name the tensor and what was expected, as the HTTP codec's do.
#pragma once

#include <caf/expected.hpp>

#include "grpc/kserve.pb.h"
#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace actorserve::grpc_codec {

/// The request's inputs (copied out of the message), requested outputs, id and parameters
/// ("timeout" in microseconds, "priority"); its model and version are left to the caller.
caf::expected<infer_request> decode_infer(const ::inference::ModelInferRequest& msg);

/// Fills `out` with the response: outputs described, their bytes in raw_output_contents, and
/// the batch it ran in as parameters (batch_size, batch_requests).
void encode_infer(const infer_response& r, ::inference::ModelInferResponse& out);

/// The model's metadata (name, version, platform, inputs and outputs with their full shapes).
void encode_model_metadata(const model_config& m, ::inference::ModelMetadataResponse& out);

/// The model's configuration in Triton's terms: what kserve::encode_model_config gives HTTP,
/// as the message (a version that is not a number is left out: version_policy's versions are
/// numbers). An error (internal) only if that JSON does not fit the message.
caf::error encode_model_config(const model_config& m, ::inference::ModelConfigResponse& out);

/// Triton's statistics, from their JSON (metrics::statistics_json); an error (internal) if that
/// JSON does not fit the message.
caf::error decode_statistics(const std::string& json, ::inference::ModelStatisticsResponse& out);

} // namespace actorserve::grpc_codec
