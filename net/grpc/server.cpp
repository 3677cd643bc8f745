#include "net/grpc/server.hpp"

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_set>

#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include "grpc/kserve.grpc.pb.h"
#include "net/actor_bridge.hpp"
#include "net/grpc/codec.hpp"
#include "net/model_control.hpp"
#include "net/request_span.hpp"
#include "runtime/api_access.hpp"
#include "runtime/error.hpp"
#include "runtime/file_text.hpp"
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
    case errc::forbidden: return grpc::StatusCode::PERMISSION_DENIED;
    case errc::upstream_failed: return grpc::StatusCode::UNAVAILABLE;
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

/// Ends a call (unary or stream), counted in /metrics by its status code.
template <class Reactor>
void end_call(metrics& stats, Reactor* reactor, const grpc::Status& status) {
  stats.count_grpc_response(static_cast<unsigned>(status.error_code()));
  reactor->Finish(status);
}
constexpr auto readiness_timeout = std::chrono::seconds(2);

/// One inference call: cancellation marks its request (the batcher drops it if it has not run);
/// it ends when gRPC is done with it.
class infer_reactor : public grpc::ServerUnaryReactor {
public:
  std::shared_ptr<std::atomic<bool>> gone = std::make_shared<std::atomic<bool>>(false);

  void OnCancel() override { gone->store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }
};

/// protobuf's own log lines go through the node's logger (its format and escaping), at most one
/// a minute as a warning and the rest at debug level: protobuf logs every request whose strings
/// are not UTF-8 as an error on stderr, so a client could write a line per request into the log.
void protobuf_log(google::protobuf::LogLevel level, const char*, int, const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_FATAL)
    return logging::critical({"grpc"}, "protobuf: {}", message);
  static std::atomic<int64_t> next_warning{0}; // steady clock, ns
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto next = next_warning.load(std::memory_order_relaxed);
  if (now >= next
      && next_warning.compare_exchange_strong(
        next, now + std::chrono::nanoseconds(std::chrono::minutes(1)).count()))
    logging::warn({"grpc"}, "protobuf: {} (more within a minute at debug level)", message);
  else
    logging::debug({"grpc"}, "protobuf: {}", message);
}

/// Plaintext, or TLS with the configured certificate and key (and, with a client CA, only
/// clients whose certificate it signed).
caf::expected<std::shared_ptr<grpc::ServerCredentials>> credentials(const grpc_config& g) {
  const auto& tls = g.tls;
  if (!tls.enabled())
    return grpc::InsecureServerCredentials();
  auto cert = read_file(tls.certificate);
  auto key = read_file(tls.key);
  auto ca = tls.client_ca.empty() ? std::optional<std::string>{""} : read_file(tls.client_ca);
  for (auto& [text, path] : {std::pair{&cert, &tls.certificate}, {&key, &tls.key},
                             {&ca, &tls.client_ca}})
    if (!*text)
      return make_error(errc::invalid_config, "server.grpc.tls: cannot read \"" + *path + "\"");
  grpc::SslServerCredentialsOptions opts(
    tls.client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  opts.pem_root_certs = *ca;
  return grpc::SslServerCredentials(opts);
}

/// Calls answered later from CAF threads, possibly much later (a model load waits for its model
/// to be ready): stop() answers those still open "shutting down", so that the server's shutdown
/// does not wait for them, and the answer that comes after is dropped. Shared with the answers'
/// callbacks, which may outlive the server.
class late_calls {
public:
  explicit late_calls(std::shared_ptr<metrics> stats) : stats_(std::move(stats)) {}

  /// Registers a call to be answered by finish(); answered at once when closed.
  void open(grpc::ServerUnaryReactor* reactor) {
    std::lock_guard<std::mutex> guard(lock_);
    if (closed_)
      return end_call(*stats_, reactor, shutting_down);
    open_.insert(reactor);
  }

  /// Answers a call registered by open(), unless close() has: `fill` writes its response first
  /// (after close() the response may be gone).
  void finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status,
              const std::function<void()>& fill = {}) {
    std::lock_guard<std::mutex> guard(lock_);
    if (open_.erase(reactor) == 0)
      return;
    if (fill)
      fill();
    end_call(*stats_, reactor, status);
  }

  void close() {
    std::lock_guard<std::mutex> guard(lock_);
    closed_ = true;
    for (auto* reactor : open_)
      end_call(*stats_, reactor, shutting_down);
    open_.clear();
  }

private:
  std::shared_ptr<metrics> stats_;
  std::mutex lock_;
  std::unordered_set<grpc::ServerUnaryReactor*> open_;
  bool closed_ = false;
};

} // namespace

struct grpc_server::impl final : ::inference::GRPCInferenceService::CallbackService {
  std::shared_ptr<actorserve::inference> infer;
  actorserve::model_control control; // model load, unload and the repository index
  std::shared_ptr<late_calls> control_calls; // its calls, answered when it is done
  std::unique_ptr<grpc::Server> server;
  std::atomic<bool> draining{false};
  std::atomic<std::size_t> in_progress{0};

  explicit impl(std::shared_ptr<actorserve::inference> i)
    : infer(i), control(i), control_calls(std::make_shared<late_calls>(i->stats())) {}

  /// PERMISSION_DENIED for a call of group `g` that server.restricted_apis restricts and whose
  /// metadata lacks the configured value; nullopt where it may go on.
  std::optional<grpc::Status> refused(const grpc::CallbackServerContext* ctx, api_group g) const {
    const auto& all = infer->config()->server.restricted_apis;
    std::optional<std::string_view> presented;
    if (const auto* r = restriction_of(all, g)) {
      const auto& md = ctx->client_metadata();
      if (auto it = md.find(r->header); it != md.end())
        presented = std::string_view(it->second.data(), it->second.size());
    }
    if (auto why = refusal(all, g, presented))
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, *why);
    return std::nullopt;
  }

  /// Ends a call, counted in /metrics by its status code.
  void finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status) {
    end_call(*infer->stats(), reactor, status);
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
    if (auto denied = refused(ctx, api_group::health))
      return finished(ctx, *denied);
    res->set_live(true);
    return finished(ctx);
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const ::inference::ServerReadyRequest*,
                                        ::inference::ServerReadyResponse* res) override {
    if (auto denied = refused(ctx, api_group::health))
      return finished(ctx, *denied);
    return readiness(ctx, res, ready_atom::value);
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const ::inference::ModelReadyRequest* req,
                                       ::inference::ModelReadyResponse* res) override {
    if (auto denied = refused(ctx, api_group::health))
      return finished(ctx, *denied);
    if (auto m = infer->addressed(req->name(), ""); !m) // (a version: the gateway's to answer)
      return finished(ctx, status_of(m.error()));
    return readiness(ctx, res, ready_atom::value, req->name(), req->version());
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx,
                                           const ::inference::ServerMetadataRequest*,
                                           ::inference::ServerMetadataResponse* res) override {
    if (auto denied = refused(ctx, api_group::metadata))
      return finished(ctx, *denied);
    res->set_name("actorserve");
    res->set_version(ACTORSERVE_VERSION);
    for (auto e : server_extensions(false)) // (shared memory: HTTP's only)
      res->add_extensions(std::string(e));
    return finished(ctx);
  }

  /// The model (and version: "" = its only one) a call names, or nullptr with `status` set.
  const model_config* addressed(const std::string& name, const std::string& version,
                                grpc::Status& status) const {
    auto m = infer->addressed(name, version);
    if (!m) {
      status = status_of(m.error());
      return nullptr;
    }
    return *m;
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx,
                                          const ::inference::ModelMetadataRequest* req,
                                          ::inference::ModelMetadataResponse* res) override {
    if (auto denied = refused(ctx, api_group::metadata))
      return finished(ctx, *denied);
    grpc::Status status;
    auto* m = addressed(req->name(), req->version(), status);
    if (m)
      grpc_codec::encode_model_metadata(*m, *res);
    return finished(ctx, status);
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* ctx,
                                        const ::inference::ModelConfigRequest* req,
                                        ::inference::ModelConfigResponse* res) override {
    if (auto denied = refused(ctx, api_group::model_config))
      return finished(ctx, *denied);
    grpc::Status status;
    if (auto* m = addressed(req->name(), req->version(), status))
      if (auto err = grpc_codec::encode_model_config(*m, *res))
        status = status_of(err);
    return finished(ctx, status);
  }

  /// One model's statistics, or (no name) every model's.
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* ctx,
                                            const ::inference::ModelStatisticsRequest* req,
                                            ::inference::ModelStatisticsResponse* res) override {
    if (auto denied = refused(ctx, api_group::statistics))
      return finished(ctx, *denied);
    grpc::Status status;
    if (!req->name().empty() && !addressed(req->name(), req->version(), status))
      return finished(ctx, status);
    auto json = infer->stats()->statistics_json(req->name());
    if (auto err = grpc_codec::decode_statistics(json, *res))
      status = status_of(err);
    return finished(ctx, status);
  }

  /// The deployment file is the one model repository: a call naming another is refused.
  static grpc::Status check_repository(const std::string& name) {
    if (name.empty())
      return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "unknown repository '" + name + "': actorserve's one model repository is "
                          "its deployment file; leave repository_name empty");
  }

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx,
                                            const ::inference::RepositoryIndexRequest* req,
                                            ::inference::RepositoryIndexResponse* res) override {
    if (auto denied = refused(ctx, api_group::model_repository))
      return finished(ctx, *denied);
    if (auto status = check_repository(req->repository_name()); !status.ok())
      return finished(ctx, status);
    auto* reactor = ctx->DefaultReactor();
    control_calls->open(reactor);
    control.index(req->ready(), [calls = control_calls, reactor, res](
                                  std::vector<actorserve::model_control::model_state> all) {
      calls->finish(reactor, grpc::Status::OK, [&] {
        for (auto& m : all) {
          auto* out = res->add_models();
          out->set_name(m.name);
          out->set_version(m.version);
          out->set_state(m.state);
          out->set_reason(m.reason);
        }
      });
    });
    return reactor;
  }

  /// A load or unload (net/model_control), answered once done; its parameters may hold only
  /// unload_dependents (a boolean), as over HTTP.
  template <class Request>
  grpc::ServerUnaryReactor* control_model(grpc::CallbackServerContext* ctx, const Request& req,
                                          bool load) {
    if (auto denied = refused(ctx, api_group::model_repository))
      return finished(ctx, *denied);
    if (auto status = check_repository(req.repository_name()); !status.ok())
      return finished(ctx, status);
    if (!infer->config()->server.model_control)
      return finished(ctx, grpc::Status(grpc::StatusCode::PERMISSION_DENIED, model_control_off));
    for (const auto& [key, value] : req.parameters())
      if (key != "unload_dependents"
          || value.parameter_choice_case() != ::inference::ModelRepositoryParameter::kBoolParam)
        return finished(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                          "parameter '" + key + "' is not taken: "
                                            + model_control::parameters_expected));
    auto* reactor = ctx->DefaultReactor();
    control_calls->open(reactor);
    auto done = [calls = control_calls, reactor](caf::expected<std::string> state) {
      calls->finish(reactor, state ? grpc::Status::OK : status_of(state.error()));
    };
    if (load)
      control.load(req.model_name(), std::move(done));
    else
      control.unload(req.model_name(), std::move(done));
    return reactor;
  }

  grpc::ServerUnaryReactor*
  RepositoryModelLoad(grpc::CallbackServerContext* ctx,
                      const ::inference::RepositoryModelLoadRequest* req,
                      ::inference::RepositoryModelLoadResponse*) override {
    return control_model(ctx, *req, true);
  }

  grpc::ServerUnaryReactor*
  RepositoryModelUnload(grpc::CallbackServerContext* ctx,
                        const ::inference::RepositoryModelUnloadRequest* req,
                        ::inference::RepositoryModelUnloadResponse*) override {
    return control_model(ctx, *req, false);
  }

  /// A call's span: the trace its client's traceparent and tracestate metadata name (or a new
  /// one), started now.
  static std::shared_ptr<request_span> begin_span(const grpc::CallbackServerContext* ctx) {
    auto value = [&](const char* key) {
      auto& md = ctx->client_metadata();
      auto it = md.find(key);
      return it == md.end() ? std::string_view{}
                            : std::string_view(it->second.data(), it->second.size());
    };
    auto span = std::make_shared<request_span>();
    span->begin(value("traceparent"), value("tracestate"), std::chrono::steady_clock::now());
    return span;
  }

  /// Ends a ModelInfer call's span (RPC semantic conventions: the codes that are the server's
  /// fault make its status ERROR).
  static void end_span(request_span& span, const std::string& model,
                       const caf::expected<infer_response>& r) {
    auto code = r ? grpc::StatusCode::OK : status_of(r.error()).error_code();
    request_span::outcome how;
    how.failed = !r;
    how.status_error = code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::DEADLINE_EXCEEDED
                       || code == grpc::StatusCode::UNIMPLEMENTED || code == grpc::StatusCode::INTERNAL
                       || code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DATA_LOSS;
    if (!r)
      how.message = error_message(r.error());
    how.response = r ? &*r : nullptr;
    auto s = span.end(tracing::span_kind::server, "inference.GRPCInferenceService/ModelInfer", how);
    if (!s)
      return;
    s->set("rpc.system", "grpc")
      .set("rpc.service", "inference.GRPCInferenceService")
      .set("rpc.method", "ModelInfer")
      .set("rpc.grpc.status_code", static_cast<int64_t>(code))
      .set("actorserve.model", model);
    tracing::record(std::move(*s));
  }

  /// Decodes a call's request and sends it on its way; `done` gets its answer: right away when
  /// it cannot be decoded, else from a CAF thread. `deadline`: the call's (max: none), which
  /// bounds the request's timeout; `gone`: set when the client goes away.
  void run(const ::inference::ModelInferRequest& msg, std::chrono::system_clock::time_point deadline,
           std::shared_ptr<std::atomic<bool>> gone, std::shared_ptr<request_span> span,
           inference::done_fn done) {
    auto received = std::chrono::steady_clock::now();
    auto* mm = infer->stats()->model(msg.model_name());
    done = [span, model = msg.model_name(), done = std::move(done)](caf::expected<infer_response> r) {
      end_span(*span, model, r);
      done(std::move(r));
    };
    auto req = grpc_codec::decode_infer(msg);
    if (!req) {
      inference::account(mm, error_code(req.error()), received);
      return done(std::move(req.error()));
    }
    span->stamp(*req);
    req->model = msg.model_name();
    req->version = msg.model_version();
    // The call's deadline is the request's, unless the request asked for less.
    if (deadline != std::chrono::system_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(
                    deadline - std::chrono::system_clock::now()).count();
      if (req->timeout_us <= 0 || req->timeout_us > left)
        req->timeout_us = std::max<int64_t>(left, 1);
    }
    req->cancelled = std::move(gone);
    in_progress.fetch_add(1);
    infer->submit(std::move(*req), std::make_shared<kserve::decoded_request>(),
                  [this, mm, received, done = std::move(done)](caf::expected<infer_response> r) {
                    inference::account(mm, r ? errc::none : error_code(r.error()), received);
                    done(std::move(r));
                    in_progress.fetch_sub(1);
                  });
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const ::inference::ModelInferRequest* msg,
                                       ::inference::ModelInferResponse* res) override {
    auto* reactor = new infer_reactor;
    if (auto denied = refused(ctx, api_group::inference)) {
      finish(reactor, *denied);
      return reactor;
    }
    if (draining) {
      finish(reactor, shutting_down);
      return reactor;
    }
    auto span = begin_span(ctx);
    ctx->AddInitialMetadata("traceparent", span->context().header());
    if (!span->tracestate().empty())
      ctx->AddInitialMetadata("tracestate", span->tracestate());
    run(*msg, ctx->deadline(), reactor->gone, std::move(span),
        [this, reactor, res](caf::expected<infer_response> r) {
          if (r) {
            grpc_codec::encode_infer(*r, *res);
            finish(reactor, grpc::Status::OK);
          } else {
            finish(reactor, status_of(r.error()));
          }
        });
    return reactor;
  }

  /// One ModelStreamInfer call: each request read is run at once (many may be in flight) and
  /// answered on the stream when its answer is ready, one write at a time; a failed request is
  /// answered with its error_message. The call ends once the client has sent its last request
  /// and every answer is written (or the client is gone); only then can no answer still come,
  /// so the reactor is deleted safely in OnDone.
  class stream_reactor final
    : public grpc::ServerBidiReactor<::inference::ModelInferRequest,
                                     ::inference::ModelStreamInferResponse> {
  public:
    stream_reactor(impl& srv, grpc::CallbackServerContext* ctx)
      : srv_(srv), ctx_(ctx), deadline_(ctx->deadline()),
        max_pending_(srv.infer->config()->server.grpc.max_stream_pending) {
      if (auto denied = srv_.refused(ctx, api_group::inference)) {
        finished_ = true;
        srv_.finish_stream(this, *denied);
        return;
      }
      StartRead(&incoming_);
    }

    void OnReadDone(bool ok) override {
      if (!ok) { // the client is done sending (or gone)
        std::unique_lock<std::mutex> lk(mtx_);
        reads_done_ = true;
        return finish_if_done(lk);
      }
      auto msg = std::move(incoming_);
      incoming_.Clear();
      {
        std::lock_guard<std::mutex> guard(mtx_);
        ++outstanding_;
      }
      auto answer = [this, id = msg.id(), model = msg.model_name()](
                      caf::expected<infer_response> r) { complete(id, model, std::move(r)); };
      if (srv_.draining)
        answer(make_error(errc::not_ready, "the server is shutting down"));
      else
        srv_.run(msg, deadline_, gone_, srv_.begin_span(ctx_), std::move(answer));
      read_more(); // (reads_done_ is still false: the call cannot have finished)
    }

    void OnWriteDone(bool ok) override {
      std::unique_lock<std::mutex> lk(mtx_);
      writes_.pop_front();
      if (!ok) { // the stream broke: answers still to come have nowhere to go
        broken_ = true;
        writes_.clear();
      }
      resume_reading(lk);
      if (!writes_.empty()) {
        auto* next = &writes_.front();
        // More answers queued behind it: gRPC may hold this one back to send them together.
        auto options = writes_.size() > 1 ? grpc::WriteOptions().set_buffer_hint()
                                          : grpc::WriteOptions();
        lk.unlock();
        return StartWrite(next, options);
      }
      writing_ = false;
      finish_if_done(lk);
    }

    void OnCancel() override { gone_->store(true, std::memory_order_relaxed); }
    void OnDone() override { delete this; }

  private:
    void complete(const std::string& id, const std::string& model,
                  caf::expected<infer_response> r) {
      ::inference::ModelStreamInferResponse out;
      if (r) {
        grpc_codec::encode_infer(*r, *out.mutable_infer_response());
      } else {
        out.set_error_message(error_message(r.error()));
        out.mutable_infer_response()->set_id(id);
        out.mutable_infer_response()->set_model_name(model);
      }
      std::unique_lock<std::mutex> lk(mtx_);
      --outstanding_;
      if (broken_) {
        resume_reading(lk);
        return finish_if_done(lk);
      }
      writes_.push_back(std::move(out)); // (a deque: the write in flight keeps its address)
      if (writing_)
        return;
      writing_ = true;
      auto* next = &writes_.front();
      lk.unlock();
      StartWrite(next);
    }

    /// Reads the next request, unless max_stream_pending answers are still to run or be written:
    /// then the stream waits (HTTP/2 flow control holds the client back) until one is written.
    void read_more() {
      {
        std::lock_guard<std::mutex> guard(mtx_);
        if (outstanding_ + writes_.size() >= max_pending_) {
          read_paused_ = true;
          return;
        }
      }
      StartRead(&incoming_);
    }

    /// Reads again if reading waited and there is room now (or the stream broke: the read then
    /// ends, so the call can). Unlocks `lk` when it reads.
    void resume_reading(std::unique_lock<std::mutex>& lk) {
      if (!read_paused_ || (!broken_ && outstanding_ + writes_.size() >= max_pending_))
        return;
      read_paused_ = false;
      lk.unlock();
      StartRead(&incoming_);
      lk.lock();
    }

    /// Ends the call once nothing is left to read, run or write. Nothing touches the reactor
    /// after Finish (OnDone may delete it at once).
    void finish_if_done(std::unique_lock<std::mutex>& lk) {
      if (!reads_done_ || outstanding_ > 0 || writing_ || finished_)
        return;
      finished_ = true;
      auto status = broken_ ? grpc::Status::CANCELLED : grpc::Status::OK;
      lk.unlock();
      srv_.finish_stream(this, status);
    }

    impl& srv_;
    grpc::CallbackServerContext* ctx_; // (alive until OnDone: its metadata name each request's trace)
    const std::chrono::system_clock::time_point deadline_;
    std::shared_ptr<std::atomic<bool>> gone_ = std::make_shared<std::atomic<bool>>(false);
    ::inference::ModelInferRequest incoming_;
    std::mutex mtx_; // guards what follows
    std::deque<::inference::ModelStreamInferResponse> writes_; // front: being written
    const std::size_t max_pending_; // answers to run or write before reading waits
    std::size_t outstanding_ = 0; // requests read, not yet answered
    bool reads_done_ = false, writing_ = false, broken_ = false, finished_ = false;
    bool read_paused_ = false; // max_pending_ reached: the next read waits for a written answer
  };

  void finish_stream(stream_reactor* r, const grpc::Status& status) {
    end_call(*infer->stats(), r, status);
  }

  grpc::ServerBidiReactor<::inference::ModelInferRequest, ::inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* ctx) override {
    return new stream_reactor(*this, ctx);
  }
};

grpc_server::grpc_server(std::shared_ptr<inference> infer)
  : impl_(std::make_unique<impl>(std::move(infer))) {
}

grpc_server::~grpc_server() {
  stop();
}

caf::expected<std::string> grpc_server::start() {
  const auto& g = impl_->infer->config()->server.grpc;
  int bound = 0;
  auto creds = credentials(g);
  if (!creds)
    return std::move(creds.error());
  google::protobuf::SetLogHandler(&protobuf_log); // (before any request is parsed)
  grpc::ServerBuilder builder;
  builder.AddListeningPort(g.address + ":" + std::to_string(g.port), *creds, &bound);
  // One server per port: gRPC's default SO_REUSEPORT would let a second node share it silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(g.max_message_bytes));
  // Bounds a client or flood cannot pass: streams per connection, header (metadata) size, and
  // the memory and threads gRPC itself may take (its buffers count in the quota).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(g.max_concurrent_streams));
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, static_cast<int>(g.max_metadata_bytes));
  // Clients may ping at most every 10 s without data (more is answered with GOAWAY).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  grpc::ResourceQuota quota("actorserve-grpc");
  quota.Resize(static_cast<std::size_t>(g.memory_quota_bytes));
  builder.SetResourceQuota(quota);
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  builder.RegisterService(impl_.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || bound == 0)
    return make_error(errc::invalid_config,
                      "cannot serve gRPC on " + g.address + ":" + std::to_string(g.port)
                        + (g.tls.enabled() ? " (address in use, not an address here, or a TLS key that "
                                     "is not the certificate's?)"
                                   : " (address in use, or not an address here?)"));
  return "grpc on " + g.address + ":" + std::to_string(bound)
         + (!g.tls.enabled()           ? ""
            : g.tls.client_ca.empty() ? " (TLS)"
                                      : " (TLS, client certificates)");
}

void grpc_server::begin_drain() {
  impl_->draining = true;
}

std::size_t grpc_server::in_flight() const {
  return impl_->in_progress.load();
}

void grpc_server::stop() {
  impl_->control.stop();
  impl_->control_calls->close();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    impl_->server->Wait();
    impl_->server.reset();
  }
}

} // namespace actorserve
