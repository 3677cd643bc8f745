// actorserve-bare-grpc: the gRPC ceiling of a machine. A gRPC server with the KServe v2 service
// (the callback API, as actorserve's gRPC front) whose ModelInfer reads each request and answers a
// fixed small response (one FP32 [1,10] output in raw_output_contents), doing no work at all;
// ServerLive, ServerReady and ModelReady answer true so that clients and scripts can wait for it.
//   actorserve-bare-grpc PORT
#include <cstdio>
#include <string>

#include <grpcpp/grpcpp.h>

#include "grpc/kserve.grpc.pb.h"

namespace {

class bare final : public inference::GRPCInferenceService::CallbackService {
public:
  bare() {
    answer_.set_model_name("bare");
    answer_.set_model_version("1");
    auto* out = answer_.add_outputs();
    out->set_name("logits");
    out->set_datatype("FP32");
    out->add_shape(1);
    out->add_shape(10);
    answer_.add_raw_output_contents(std::string(40, '\0'));
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const inference::ModelInferRequest* req,
                                       inference::ModelInferResponse* res) override {
    *res = answer_;
    res->set_id(req->id());
    return finish(ctx);
  }
  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* res) override {
    res->set_live(true);
    return finish(ctx);
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* res) override {
    res->set_ready(true);
    return finish(ctx);
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const inference::ModelReadyRequest*,
                                       inference::ModelReadyResponse* res) override {
    res->set_ready(true);
    return finish(ctx);
  }

private:
  static grpc::ServerUnaryReactor* finish(grpc::CallbackServerContext* ctx) {
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

  inference::ModelInferResponse answer_;
};

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: actorserve-bare-grpc PORT\n");
    return 2;
  }
  bare service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "actorserve-bare-grpc: cannot listen on port %s\n", argv[1]);
    return 1;
  }
  std::printf("actorserve-bare-grpc: listening on 127.0.0.1:%s\n", argv[1]);
  std::fflush(stdout);
  server->Wait();
}
