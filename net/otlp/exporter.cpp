// The OTLP span sink (runtime/tracing.hpp): batches of spans as OTLP ExportTraceServiceRequest
// messages, sent to a collector over HTTP/protobuf (Beast, one kept-alive connection) or gRPC
// (where the gRPC library is built). Runs on the recorder's exporter thread only, and blocks it
// for at most export_timeout_ms per batch; spans it cannot deliver are dropped and counted there.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <google/protobuf/arena.h>

#include "net/otlp/otlp_trace.pb.h"
#if ACTORSERVE_OTLP_GRPC
#include <grpcpp/grpcpp.h>

#include "net/otlp/otlp_trace.grpc.pb.h"
#endif

#include "runtime/error.hpp"
#include "runtime/tracing.hpp"

namespace actorserve {
namespace {

namespace pb = opentelemetry::proto::collector::trace::v1;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// "0af7..." (hex) as the bytes OTLP carries.
std::string bytes_of(const std::string& hex) {
  std::string out(hex.size() / 2, '\0');
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

void set_value(pb::AnyValue& v, const tracing::attribute_value& x) {
  if (auto* s = std::get_if<std::string>(&x))
    v.set_string_value(*s);
  else if (auto* i = std::get_if<int64_t>(&x))
    v.set_int_value(*i);
  else if (auto* d = std::get_if<double>(&x))
    v.set_double_value(*d);
  else
    v.set_bool_value(std::get<bool>(x));
}

template <class Key>
void add_attribute(google::protobuf::RepeatedPtrField<pb::KeyValue>& to, const Key& key,
                   const tracing::attribute_value& value) {
  auto* kv = to.Add();
  kv->set_key(key);
  set_value(*kv->mutable_value(), value);
}

void fill_span(pb::Span& out, const tracing::span& s) {
  out.set_trace_id(bytes_of(s.trace_id));
  out.set_span_id(bytes_of(s.span_id));
  if (!s.parent_span_id.empty())
    out.set_parent_span_id(bytes_of(s.parent_span_id));
  out.set_flags(0x1); // (W3C trace flags: sampled)
  out.set_name(s.name);
  out.set_kind(static_cast<pb::Span::SpanKind>(s.kind));
  out.set_start_time_unix_nano(static_cast<uint64_t>(s.start_unix_ns));
  out.set_end_time_unix_nano(static_cast<uint64_t>(std::max(s.end_unix_ns, s.start_unix_ns)));
  for (auto& a : s.attributes)
    add_attribute(*out.mutable_attributes(), a.key, a.value);
  for (auto& l : s.links) {
    auto* link = out.add_links();
    link->set_trace_id(bytes_of(l.trace_id));
    link->set_span_id(bytes_of(l.span_id));
  }
  if (s.error) {
    out.mutable_status()->set_code(pb::Status::STATUS_CODE_ERROR);
    out.mutable_status()->set_message(s.status_message);
  }
}

/// The resource (this node) and scope every batch carries, made once.
pb::ResourceSpans resource_of(const tracing_config& cfg) {
  pb::ResourceSpans rs;
  auto& attrs = *rs.mutable_resource()->mutable_attributes();
  add_attribute(attrs, "service.name", cfg.service_name);
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0)
    add_attribute(attrs, "host.name", std::string(host));
  add_attribute(attrs, "process.pid", static_cast<int64_t>(::getpid()));
  add_attribute(attrs, "service.version", std::string(ACTORSERVE_VERSION));
  add_attribute(attrs, "telemetry.sdk.name", std::string("actorserve"));
  add_attribute(attrs, "telemetry.sdk.language", std::string("cpp"));
  for (auto& [k, v] : cfg.resource_attributes)
    add_attribute(attrs, k, v);
  auto* scope = rs.add_scope_spans()->mutable_scope();
  scope->set_name("actorserve");
  scope->set_version(ACTORSERVE_VERSION);
  return rs;
}

/// The export request of `spans`, its messages in `arena` (freed with it, all at once).
pb::ExportTraceServiceRequest& request_of(google::protobuf::Arena& arena,
                                          const pb::ResourceSpans& resource,
                                          const std::vector<tracing::span>& spans) {
  auto* req = google::protobuf::Arena::CreateMessage<pb::ExportTraceServiceRequest>(&arena);
  auto* rs = req->add_resource_spans();
  rs->CopyFrom(resource);
  auto* ss = rs->mutable_scope_spans(0);
  ss->mutable_spans()->Reserve(static_cast<int>(spans.size()));
  for (auto& s : spans)
    fill_span(*ss->add_spans(), s);
  return *req;
}

/// Host, port and path of an "http://HOST[:PORT][/PATH]" endpoint.
struct endpoint_parts {
  std::string host, port, path;
};

caf::expected<endpoint_parts> split_endpoint(const std::string& url, const char* default_port) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    return make_error(errc::invalid_config, "server.tracing.endpoint: expected an http:// URL, got \""
                                              + url + "\"");
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  endpoint_parts p;
  p.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto authority = rest.substr(0, slash);
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    p.host = authority.substr(0, colon);
    p.port = authority.substr(colon + 1);
  } else {
    p.host = authority;
    p.port = default_port;
  }
  if (p.host.size() > 2 && p.host.front() == '[' && p.host.back() == ']')
    p.host = p.host.substr(1, p.host.size() - 2);
  if (p.host.empty() || p.port.empty()
      || p.port.find_first_not_of("0123456789") != std::string::npos)
    return make_error(errc::invalid_config,
                      "server.tracing.endpoint: expected http://HOST:PORT[/PATH], got \"" + url
                        + "\"");
  return p;
}

/// OTLP/HTTP with binary protobuf (POST, application/x-protobuf), on one kept-alive connection
/// that is made again when it fails.
class http_sink final : public tracing::span_sink {
public:
  http_sink(const tracing_config& cfg, endpoint_parts where)
    : cfg_(cfg), where_(std::move(where)), resource_(resource_of(cfg)) {}

  bool send(const std::vector<tracing::span>& spans, std::string& why) override {
    std::string body;
    {
      google::protobuf::Arena arena;
      request_of(arena, resource_, spans).SerializeToString(&body);
    }
    // A kept connection the collector closed meanwhile fails at once: then once more, afresh.
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool fresh = !stream_;
      if (post(body, why))
        return true;
      stream_.reset();
      if (fresh)
        return false;
    }
    return false;
  }

private:
  bool post(const std::string& body, std::string& why) {
    auto deadline = std::chrono::milliseconds(cfg_.export_timeout_ms);
    beast::error_code ec;
    if (!stream_) {
      stream_.emplace(ioc_);
      tcp::resolver resolver{ioc_};
      auto found = resolver.resolve(where_.host, where_.port, ec);
      if (ec)
        return failed(why, "cannot resolve " + where_.host + ": " + ec.message());
      stream_->expires_after(deadline);
      stream_->connect(found, ec);
      if (ec)
        return failed(why, "cannot connect to " + where_.host + ":" + where_.port + ": "
                             + ec.message());
    }
    http::request<http::string_body> req{http::verb::post, where_.path, 11};
    req.set(http::field::host, where_.host + ":" + where_.port);
    req.set(http::field::content_type, "application/x-protobuf");
    req.set(http::field::user_agent, "actorserve/" ACTORSERVE_VERSION);
    for (auto& [k, v] : cfg_.headers)
      req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    stream_->expires_after(deadline);
    http::write(*stream_, req, ec);
    if (ec)
      return failed(why, "sending: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    http::read(*stream_, buffer, parser, ec);
    if (ec)
      return failed(why, "reading the answer: " + ec.message());
    auto& res = parser.get();
    if (!res.keep_alive())
      stream_.reset();
    auto status = res.result_int();
    if (status / 100 != 2)
      return failed(why, "the collector answered " + std::to_string(status) + " "
                           + std::string(res.reason()));
    return true;
  }

  static bool failed(std::string& why, std::string what) {
    why = std::move(what);
    return false;
  }

  tracing_config cfg_;
  endpoint_parts where_;
  pb::ResourceSpans resource_;
  asio::io_context ioc_;
  std::optional<beast::tcp_stream> stream_;
};

#if ACTORSERVE_OTLP_GRPC
/// OTLP/gRPC: TraceService/Export on a plain-text channel, each call bounded by the timeout.
class grpc_sink final : public tracing::span_sink {
public:
  grpc_sink(const tracing_config& cfg, const endpoint_parts& where)
    : cfg_(cfg), resource_(resource_of(cfg)),
      stub_(pb::TraceService::NewStub(grpc::CreateChannel(
        where.host + ":" + where.port, grpc::InsecureChannelCredentials()))) {}

  bool send(const std::vector<tracing::span>& spans, std::string& why) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now()
                     + std::chrono::milliseconds(cfg_.export_timeout_ms));
    for (auto& [k, v] : cfg_.headers) {
      std::string key = k;
      for (auto& c : key) // (gRPC metadata keys are lower case)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ctx.AddMetadata(key, v);
    }
    pb::ExportTraceServiceResponse res;
    google::protobuf::Arena arena;
    auto status = stub_->Export(&ctx, request_of(arena, resource_, spans), &res);
    if (!status.ok()) {
      why = "gRPC status " + std::to_string(status.error_code()) + ": " + status.error_message();
      return false;
    }
    return true;
  }

private:
  tracing_config cfg_;
  pb::ResourceSpans resource_;
  std::unique_ptr<pb::TraceService::Stub> stub_;
};
#endif

caf::expected<std::unique_ptr<tracing::span_sink>> make_sink(const tracing_config& cfg) {
  auto where = split_endpoint(cfg.endpoint, cfg.protocol == "grpc" ? "4317" : "4318");
  if (!where)
    return std::move(where.error());
  if (cfg.protocol == "grpc") {
#if ACTORSERVE_OTLP_GRPC
    return std::unique_ptr<tracing::span_sink>(new grpc_sink(cfg, *where));
#else
    return make_error(errc::invalid_config, "server.tracing.protocol \"grpc\": this build has no "
                                            "gRPC (libgrpc++-dev); use \"http/protobuf\"");
#endif
  }
  return std::unique_ptr<tracing::span_sink>(new http_sink(cfg, std::move(*where)));
}

struct registrar {
  registrar() { tracing::register_sink(make_sink); }
} const registered;

} // namespace
} // namespace actorserve
