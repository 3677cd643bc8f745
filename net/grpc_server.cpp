#include "net/grpc_server.hpp"

#include <atomic>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "grpc/kserve.grpc.pb.h"
#include "net/actor_bridge.hpp"
#include "net/grpc_codec.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace actorserve {

namespace {

grpc::StatusCode grpc_code(errc c) {
  switch (c) {
    case errc::none: return grpc::StatusCode::OK;
    case errc::invalid_input:
    case errc::invalid_config: return grpc::StatusCode::INVALID_ARGUMENT;
    case errc::model_not_found: return grpc::StatusCode::NOT_FOUND;
    case errc::payload_too_large: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case errc::overloaded:
    case errc::not_ready:
    case errc::escalated: return grpc::StatusCode::UNAVAILABLE;
    case errc::deadline_exceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case errc::cancelled: return grpc::StatusCode::CANCELLED;
    case errc::inference_failed:
    case errc::worker_failed:
    case errc::internal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

grpc::Status status_of(const caf::error& err) {
  return grpc::Status(grpc_code(error_code(err)), error_message(err));
}

const grpc::Status shutting_down(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
constexpr auto readiness_timeout = std::chrono::seconds(2);

/// One inference call: cancellation marks its request (the batcher drops it if it has not run);
/// it ends when gRPC is done with it.
class infer_reactor : public grpc::ServerUnaryReactor {
public:
  std::shared_ptr<std::atomic<bool>> gone = std::make_shared<std::atomic<bool>>(false);

  void OnCancel() override { gone->store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }
};

/// The whole of a (PEM) file, or nothing where it cannot be read.
std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Plaintext, or TLS with the configured certificate and key (and, with a client CA, only
/// clients whose certificate it signed).
caf::expected<std::shared_ptr<grpc::ServerCredentials>> credentials(const grpc_config& g) {
  if (!g.tls())
    return grpc::InsecureServerCredentials();
  auto cert = read_file(g.tls_certificate);
  auto key = read_file(g.tls_key);
  auto ca = g.tls_client_ca.empty() ? std::optional<std::string>{""} : read_file(g.tls_client_ca);
  for (auto& [text, path] : {std::pair{&cert, &g.tls_certificate}, {&key, &g.tls_key},
                             {&ca, &g.tls_client_ca}})
    if (!*text)
      return make_error(errc::invalid_config, "server.grpc.tls: cannot read \"" + *path + "\"");
  grpc::SslServerCredentialsOptions opts(
    g.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  opts.pem_root_certs = *ca;
  return grpc::SslServerCredentials(opts);
}

} // namespace

struct grpc_server::impl final : ::inference::GRPCInferenceService::CallbackService {
  std::shared_ptr<actorserve::inference> infer;
  std::unique_ptr<grpc::Server> server;
  std::atomic<bool> draining{false};
  std::atomic<std::size_t> in_progress{0};

  explicit impl(std::shared_ptr<actorserve::inference> i) : infer(std::move(i)) {}

  /// Ends a call, counted in /metrics by its status code.
  void finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status) {
    infer->stats()->count_grpc_response(static_cast<unsigned>(status.error_code()));
    reactor->Finish(status);
  }

  /// A call answered at once.
  grpc::ServerUnaryReactor* finished(grpc::CallbackServerContext* ctx,
                                     const grpc::Status& status = grpc::Status::OK) {
    auto* reactor = ctx->DefaultReactor();
    finish(reactor, status);
    return reactor;
  }

  /// A readiness call: not ready while draining, else the gateway's answer to `xs` (from a CAF
  /// thread once it comes; not ready if it does not come in time).
  template <class Response, class... Ts>
  grpc::ServerUnaryReactor* readiness(grpc::CallbackServerContext* ctx, Response* res,
                                      Ts&&... xs) {
    if (draining) {
      res->set_ready(false);
      return finished(ctx);
    }
    auto* reactor = ctx->DefaultReactor();
    ask<bool>(infer->system(), infer->gateway()->get(), readiness_timeout,
              [this, reactor, res](caf::expected<bool> ready) {
                res->set_ready(ready && *ready);
                finish(reactor, grpc::Status::OK);
              },
              std::forward<Ts>(xs)...);
    return reactor;
  }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx,
                                       const ::inference::ServerLiveRequest*,
                                       ::inference::ServerLiveResponse* res) override {
    res->set_live(true);
    return finished(ctx);
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const ::inference::ServerReadyRequest*,
                                        ::inference::ServerReadyResponse* res) override {
    return readiness(ctx, res, ready_atom::value);
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const ::inference::ModelReadyRequest* req,
                                       ::inference::ModelReadyResponse* res) override {
    if (!infer->config()->find_model(req->name()))
      return finished(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                        "unknown model '" + req->name() + "'"));
    return readiness(ctx, res, ready_atom::value, req->name(), req->version());
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx,
                                           const ::inference::ServerMetadataRequest*,
                                           ::inference::ServerMetadataResponse* res) override {
    res->set_name("actorserve");
    res->set_version("0.1.0");
    for (const char* e : {"model_configuration", "statistics", "binary_tensor_data",
                          "model_repository", "classification"})
      res->add_extensions(e);
    return finished(ctx);
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx,
                                          const ::inference::ModelMetadataRequest* req,
                                          ::inference::ModelMetadataResponse* res) override {
    auto* m = infer->config()->find_model(req->name());
    if (!m || (!req->version().empty() && req->version() != m->version))
      return finished(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                        m ? "model '" + req->name() + "' has no version '"
                                              + req->version() + "'"
                                          : "unknown model '" + req->name() + "'"));
    grpc_codec::encode_model_metadata(*m, *res);
    return finished(ctx);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const ::inference::ModelInferRequest* msg,
                                       ::inference::ModelInferResponse* res) override {
    auto* reactor = new infer_reactor;
    if (draining) {
      finish(reactor, shutting_down);
      return reactor;
    }
    auto received = std::chrono::steady_clock::now();
    auto* mm = infer->stats()->model(msg->model_name());
    auto req = grpc_codec::decode_infer(*msg);
    if (!req) {
      inference::account(mm, error_code(req.error()), received);
      finish(reactor, status_of(req.error()));
      return reactor;
    }
    req->model = msg->model_name();
    req->version = msg->model_version();
    // The call's deadline is the request's, unless the request asked for less.
    auto deadline = ctx->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(
                    deadline - std::chrono::system_clock::now()).count();
      if (req->timeout_us <= 0 || req->timeout_us > left)
        req->timeout_us = std::max<int64_t>(left, 1);
    }
    req->cancelled = reactor->gone;
    in_progress.fetch_add(1);
    auto options = std::make_shared<kserve::decoded_request>();
    infer->submit(std::move(*req), options,
                  [this, reactor, res, mm, received](caf::expected<infer_response> r) {
                    inference::account(mm, r ? errc::none : error_code(r.error()), received);
                    if (r) {
                      grpc_codec::encode_infer(*r, *res);
                      finish(reactor, grpc::Status::OK);
                    } else {
                      finish(reactor, status_of(r.error()));
                    }
                    in_progress.fetch_sub(1);
                  });
    return reactor;
  }
};

grpc_server::grpc_server(std::shared_ptr<inference> infer)
  : impl_(std::make_unique<impl>(std::move(infer))) {
}

grpc_server::~grpc_server() {
  stop();
}

caf::expected<uint16_t> grpc_server::start() {
  const auto& g = impl_->infer->config()->server.grpc;
  int bound = 0;
  auto creds = credentials(g);
  if (!creds)
    return std::move(creds.error());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(g.address + ":" + std::to_string(g.port), *creds, &bound);
  // One server per port: gRPC's default SO_REUSEPORT would let a second node share it silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(g.max_message_bytes));
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  builder.RegisterService(impl_.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || bound == 0)
    return make_error(errc::invalid_config,
                      "cannot serve gRPC on " + g.address + ":" + std::to_string(g.port)
                        + (g.tls() ? " (address in use, not an address here, or a TLS key that "
                                     "is not the certificate's?)"
                                   : " (address in use, or not an address here?)"));
  return static_cast<uint16_t>(bound);
}

void grpc_server::begin_drain() {
  impl_->draining = true;
}

std::size_t grpc_server::requests_in_progress() const {
  return impl_->in_progress.load();
}

void grpc_server::stop() {
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    impl_->server->Wait();
    impl_->server.reset();
  }
}

} // namespace actorserve
