// The gRPC codec on any bytes: they are parsed as a KServe v2 ModelInferRequest (protobuf wire
// format, as the server receives it) and decoded. It must answer a decoded request or an error,
// never crash, wrap a size or read out of bounds; what it decodes must hold together, and encode
// back into a response whose raw contents carry exactly the decoded bytes.
#include <cstddef>
#include <cstdint>

#include <google/protobuf/stubs/logging.h>

#include "net/grpc/codec.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr); // (quiet: it logs every string that is not UTF-8)
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace actorserve;
  ::inference::ModelInferRequest msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size)))
    return 0; // (not a message: the server's gRPC layer answers that, not the codec)
  auto r = grpc_codec::decode_infer(msg);
  if (!r)
    return 0;
  infer_response resp;
  resp.model = msg.model_name();
  resp.client_id = r->client_id;
  for (auto& t : r->inputs) {
    if (!t.consistent())
      __builtin_trap();
    resp.outputs.push_back(t);
  }
  ::inference::ModelInferResponse out;
  grpc_codec::encode_infer(resp, out);
  if (out.outputs_size() != static_cast<int>(resp.outputs.size())
      || out.raw_output_contents_size() != out.outputs_size())
    __builtin_trap();
  for (int i = 0; i < out.raw_output_contents_size(); ++i)
    if (out.raw_output_contents(i).size() != resp.outputs[static_cast<std::size_t>(i)].data.size())
      __builtin_trap();
  return 0;
}
