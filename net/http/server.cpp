#include "net/http/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#if ACTORSERVE_WITH_HTTPS
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/ssl.hpp>
#endif
#include <caf/all.hpp>

#include "net/actor_bridge.hpp"
#include "net/kserve/client_shm.hpp"
#include "net/http/connection_limits.hpp"
#include "net/http/content_coding.hpp"
#include "net/http/loop_inbox.hpp"
#include "net/http/routes.hpp"
#include "net/http_status.hpp"
#include "net/inference.hpp"
#include "net/kserve/json_codec.hpp"
#include "net/model_control.hpp"
#include "net/http/peer_uid.hpp"
#include "net/http/response_head.hpp"
#include "net/http/shared_body.hpp"
#include "net/http/waiting_clients.hpp"
#include "net/request_span.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
// A connection's socket and stream name their loop's executor type rather than
// asio::any_io_executor (beast::tcp_stream): every operation on them copied and destroyed the
// type-erased executor (~2% of the node's samples at 64 connections).
using loop_socket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;
using tcp_stream = beast::basic_stream<tcp, asio::io_context::executor_type>;
#if ACTORSERVE_WITH_HTTPS
using tls_stream = beast::ssl_stream<tcp_stream>;
#endif

namespace actorserve {

namespace {

constexpr std::string_view server_name = "actorserve/0.1";
constexpr std::size_t header_limit = 64 * 1024;
constexpr std::size_t read_buffer_bytes = 64 * 1024; // the session's read buffer
constexpr int linger_ms = 5000; // reading what a client still sends after the last answer
// A request is watched for its client leaving once it has waited this long (waiting_clients.hpp).
constexpr std::chrono::milliseconds client_watch_after{5};

} // namespace

struct http_server::impl {
  caf::actor_system& sys;
  std::shared_ptr<handle_cell<gateway_actor>> gateway; // replaced when the gateway restarts
  std::shared_ptr<const deployment_config> cfg;
  std::shared_ptr<metrics> stats;
  // One event loop per I/O thread (http.io_threads), each connection on one of them, round
  // robin: an answer posted from a CAF thread wakes the one thread that owns its connection (one
  // loop shared by all threads woke two of them per request, and moved connections between them).
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<std::unique_ptr<loop_inbox>> inboxes; // one per loop: answers coming back to it
  std::vector<std::unique_ptr<waiting_clients>> waiting; // one per loop: whose request waits
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::size_t next_loop = 0; // (on accept_strand)
  asio::io_context& ioc; // loops[0]: the acceptor's
  asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(ioc)};
  tcp::acceptor acceptor{accept_strand}; // it, its timer and their handlers: on accept_strand
  asio::steady_timer accept_timer{accept_strand};
  std::chrono::milliseconds accept_backoff{0};
  uint64_t accept_failures = 0; // since the last report
  std::chrono::steady_clock::time_point accept_reported;
  std::vector<std::thread> threads;
  connection_limits connections; // http.max_connections, .max_connections_per_client
  std::atomic<bool> draining{false};      // begin_drain() was called
  std::atomic<std::size_t> in_progress{0}; // requests read, response not yet written
  shm_registry shm; // the clients' shared memory regions (http.allow_shared_memory)
  std::shared_ptr<inference> infer; // the response caches, the way to the gateway
  actorserve::model_control control; // model load, unload and the repository index
#if ACTORSERVE_WITH_HTTPS
  // server.http.tls: HTTPS. The context new connections get (each session keeps the one it
  // got), replaced when the files change; it, the timer and the files' stamps: on accept_strand.
  std::shared_ptr<asio::ssl::context> tls;
  asio::steady_timer tls_timer{accept_strand};
  std::vector<std::string> tls_stamps; // of the files the context was made from
  void watch_tls();
#endif

  explicit impl(std::shared_ptr<inference> i)
    : sys(i->system()), gateway(i->gateway()), cfg(i->config()), stats(i->stats()),
      ioc(*loops.emplace_back(std::make_unique<asio::io_context>(1))),
      connections(cfg->server.http.max_connections, cfg->server.http.max_connections_per_client),
      shm(cfg->server.http.shared_memory_key_prefixes),
      infer(i), control(std::move(i)) {}

  void accept();
  void accept_failed(const beast::error_code& ec);
  void refuse_connection(loop_socket socket, const std::string& why);
  void close_acceptor();
};

namespace {

/// One connection: plain TCP (Stream tcp_stream) or TLS (tls_stream), which is
/// handshaken first.
template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>>,
                private waiting_clients::entry {
public:
  /// `stream_args`: what Stream is made of (the socket; for TLS also the context, which `keep`
  /// keeps alive as long as the session).
  template <class... Args>
  explicit session(http_server::impl& srv, std::shared_ptr<void> keep, Args&&... stream_args)
    : keep_(std::move(keep)), stream_(std::forward<Args>(stream_args)...), srv_(srv),
      http_(srv.cfg->server.http) {
    buffer_.reserve(read_buffer_bytes);
  }

  ~session() {
    if (counted_) // (only when the I/O stopped before its answer was written)
      srv_.in_progress.fetch_sub(1);
    release_body();
    if (!client_.empty())
      srv_.connections.release(client_);
  }

  /// The client address whose place in the connection limits this session gives back.
  void holds_place_of(std::string client) { client_ = std::move(client); }

  /// The inbox of the loop this session runs on, through which inference answers come back,
  /// and the loop's list of connections whose request waits.
  void answers_through(loop_inbox& inbox, waiting_clients& waiting) {
    inbox_ = &inbox;
    waiting_ = &waiting;
  }

  void start() {
    if constexpr (std::is_same_v<Stream, tcp_stream>) {
      asio::dispatch(stream_.get_executor(),
                     beast::bind_front_handler(&session::read_header, this->shared_from_this()));
    } else {
#if ACTORSERVE_WITH_HTTPS
      // The handshake first, within the header's time. A plaintext request is answered 400 in
      // plaintext; a client that fails the handshake (an old protocol, no certificate or one the
      // client CA did not sign) is disconnected.
      lowest().expires_after(std::chrono::milliseconds(http_.header_timeout_ms));
      beast::async_detect_ssl(
        lowest(), buffer_, [self = this->shared_from_this()](beast::error_code ec, bool tls) {
          if (ec)
            return self->close_quietly();
          if (!tls)
            return self->refuse_plaintext();
          self->stream_.async_handshake(
            asio::ssl::stream_base::server, self->buffer_.data(),
            [self](beast::error_code ec, std::size_t used) {
              if (ec) {
                self->srv_.stats->count_tls_handshake_failure();
                logging::debug({"http"}, "TLS handshake failed: {}", ec.message());
                return self->close_quietly();
              }
              self->buffer_.consume(used);
              self->read_header();
            });
        });
#endif
    }
  }

private:
  tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void close_quietly() {
    beast::error_code ignored;
    lowest().socket().close(ignored);
  }

  /// A plaintext request on the HTTPS port: 400 in plaintext, naming what to do, then close.
  void refuse_plaintext() {
    srv_.stats->count_tls_handshake_failure();
    srv_.stats->count_http_response(400);
    auto body = kserve::error_body("this port serves HTTPS only (server.http.tls): send the "
                                   "request over TLS (https://)");
    auto text = std::make_shared<std::string>(
      "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
      + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    asio::async_write(lowest(), asio::buffer(*text),
                      [self = this->shared_from_this(), text](beast::error_code, std::size_t) {
                        self->linger_close();
                      });
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(header_limit);
    parser_->body_limit(http_.max_body_bytes);
    if (requests_ > 0 && buffer_.size() == 0) {
      // Between requests of a keep-alive connection: the idle timeout until the next one's first
      // byte, then the header timeout for its header, as for the first request.
      lowest().expires_after(std::chrono::milliseconds(http_.idle_timeout_ms));
      return stream_.async_read_some(
        buffer_.prepare(read_buffer_bytes),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec)
            return self->fail_read(ec);
          self->buffer_.commit(n);
          self->read_header_within_timeout();
        });
    }
    read_header_within_timeout();
  }

  void read_header_within_timeout() {
    lowest().expires_after(std::chrono::milliseconds(http_.header_timeout_ms));
    http::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&session::on_header, this->shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec)
      return fail_read(ec);
    auto& req = parser_->get();
    if (auto bad = framing_error(req, parser_->chunked())) {
      keep_alive_ = false; // (where its body ends is unknown: nothing after it is read)
      return send_error(bad->first, bad->second);
    }
    if (auto len = parser_->content_length(); len && *len > http_.max_body_bytes) {
      keep_alive_ = false;
      return send_error(http::status::payload_too_large,
                        "request body of " + std::to_string(*len) + " bytes exceeds the limit of "
                          + std::to_string(http_.max_body_bytes) + " bytes (max_body_bytes)");
    }
    auto coding = parse_content_coding(req[http::field::content_encoding]);
    if (!coding) {
      keep_alive_ = false; // (its body is not read)
      return send_error(http::status::unsupported_media_type, error_message(coding.error()));
    }
    coding_ = *coding;
    if (http_.compression_level > 0)
      answer_coding_ = choose_response_coding(req[http::field::accept_encoding]);
    if (auto len = parser_->content_length(); len && *len > http_.max_inflight_body_bytes) {
      keep_alive_ = false; // (its body is not read: it could never fit)
      return send_body_limit_error(*len);
    }
    body_started_ = std::chrono::steady_clock::now();
    lowest().expires_at(body_deadline(0));
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // curl and others wait (curl: 1 s) for this before sending a body over 1 KiB.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     req.version());
      return http::async_write(
        stream_, *cont, [self = this->shared_from_this(), cont](beast::error_code ec, std::size_t) {
          if (ec)
            return self->fail_read(ec);
          self->read_body();
        });
    }
    read_body();
  }

  // Bodies count in http.max_inflight_body_bytes as their bytes arrive (not as they are
  // declared: clients that declare large bodies and send nothing hold none of the budget). A body
  // that would pass it is answered 503 there, and the connection closed.

  void read_body() {
    // A body of known length goes from the socket straight into the request's buffer (what the
    // header read already took in is moved over first); the parser, which copies every byte
    // from its read buffer, reads only chunked bodies.
    if (auto len = parser_->content_length(); len && *len > 0 && !parser_->is_done()) {
      body_length_ = static_cast<std::size_t>(*len);
      body_at_ = parser_->get().body().fill(body_length_);
      if (!body_at_) {
        keep_alive_ = false;
        return send_error(http::status::service_unavailable,
                          "overloaded: no memory for a request body of "
                            + std::to_string(body_length_) + " bytes; try again");
      }
      auto have = std::min(body_length_, buffer_.size());
      asio::buffer_copy(asio::buffer(body_at_, have), buffer_.data());
      buffer_.consume(have);
      body_read_ = 0;
      return on_body_piece({}, have);
    }
    if (parser_->is_done()) // (no body)
      return on_body();
    read_chunked_piece();
  }

  void on_body_piece(beast::error_code ec, std::size_t n) {
    if (ec)
      return fail_read(ec);
    body_read_ += n;
    if (!charge_body(n))
      return refuse_body(body_length_);
    lowest().expires_at(body_deadline(body_read_));
    if (body_read_ == body_length_)
      return on_body();
    stream_.async_read_some(
      asio::buffer(body_at_ + body_read_, body_length_ - body_read_),
      beast::bind_front_handler(&session::on_body_piece, this->shared_from_this()));
  }

  void read_chunked_piece() {
    http::async_read_some(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&session::on_chunked_piece, this->shared_from_this()));
  }

  void on_chunked_piece(beast::error_code ec, std::size_t) {
    if (ec) // (a chunked body over max_body_bytes too: 413 there)
      return fail_read(ec);
    auto size = parser_->get().body().size();
    if (size > reserved_ && !charge_body(size - reserved_))
      return refuse_body(size);
    lowest().expires_at(body_deadline(size));
    if (!parser_->is_done())
      return read_chunked_piece();
    on_body();
  }

  /// When a body that has brought `received` bytes must have brought more: after
  /// http.body_grace_ms it must keep up http.min_body_bytes_per_s on average (a client trickling
  /// a body a byte at a time is closed then), and it must end within http.body_timeout_ms.
  std::chrono::steady_clock::time_point body_deadline(uint64_t received) const {
    auto all = body_started_ + std::chrono::milliseconds(http_.body_timeout_ms);
    if (http_.min_body_bytes_per_s == 0)
      return all;
    auto earned = std::chrono::milliseconds(http_.body_grace_ms)
                  + std::chrono::milliseconds(received * 1000 / http_.min_body_bytes_per_s);
    return std::min(all, body_started_ + earned);
  }

  /// A body that would pass the budget: 503, and the connection closed (the rest is not read).
  void refuse_body(uint64_t n) {
    keep_alive_ = false;
    send_body_limit_error(n);
  }

  void on_body() {
    ++requests_;
    srv_.in_progress.fetch_add(1);
    counted_ = true;
    received_ = std::chrono::steady_clock::now();
    auto& head = parser_->get();
    auto tp = head["traceparent"];
    auto ts = head["tracestate"];
    span_.begin(std::string_view(tp.data(), tp.size()), std::string_view(ts.data(), ts.size()),
                received_);
    lowest().expires_never(); // the request's own deadline bounds what follows
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive() && !srv_.draining.load();
    if (coding_ != content_coding::identity && !decode_body())
      return;
    handle();
  }

  /// Replaces a compressed body by its decompressed bytes (which count in the server's budget
  /// for bodies instead); false after answering an error.
  bool decode_body() {
    auto decoded = decode_content(request_.body().view(), coding_, http_.max_body_bytes);
    if (!decoded) {
      send_error(static_cast<http::status>(http_status(decoded.error())),
                 error_message(decoded.error()));
      return false;
    }
    auto n = decoded->size;
    release_body();
    if (!charge_body(n)) {
      send_body_limit_error(n);
      return false;
    }
    request_.body().adopt(std::move(decoded->data), n);
    return true;
  }

  void fail_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof
        || ec == beast::error::timeout || ec == asio::error::connection_reset
        || ec == asio::error::operation_aborted) {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    // A malformed request: answer 400 and close, since the stream position is unknown.
    keep_alive_ = false;
    if (ec == http::error::body_limit) // the parser checks Content-Length against the limit
      return send_error(http::status::payload_too_large,
                        "request body exceeds the limit of " + std::to_string(http_.max_body_bytes)
                          + " bytes (max_body_bytes)");
    if (ec == http::error::header_limit)
      return send_error(http::status::request_header_fields_too_large,
                        "request header exceeds " + std::to_string(header_limit) + " bytes");
    send_error(http::status::bad_request, "malformed HTTP request: " + ec.message());
  }

  /// Why this request may not reach `kind`'s handler (answered 403), or nullopt: a restricted
  /// API group without its header's value, a state-changing request from a web page of an origin
  /// not allowed (browsers send Origin; other clients do not), model control switched off.
  std::optional<std::string> access_refusal(route::kind_t kind) const {
    if (auto g = group_of(kind)) {
      const auto* restriction = restriction_of(srv_.cfg->server.restricted_apis, *g);
      std::optional<std::string_view> presented;
      if (restriction)
        if (auto it = request_.find(restriction->header); it != request_.end())
          presented = std::string_view(it->value().data(), it->value().size());
      if (auto why = refusal(srv_.cfg->server.restricted_apis, *g, presented))
        return why;
    }
    if (changes_state(kind)) {
      if (auto it = request_.find(http::field::origin); it != request_.end()) {
        std::string origin(it->value());
        auto& allowed = http_.allowed_origins;
        if (std::find(allowed.begin(), allowed.end(), origin) == allowed.end())
          return "a state-changing request from a web page of origin '" + origin
                 + "' is refused (http.allowed_origins)";
      }
    }
    if (!srv_.cfg->server.model_control
        && (kind == route::model_load || kind == route::model_unload
            || kind == route::model_instances))
      return std::string(model_control_off);
    return std::nullopt;
  }

  /// Answers a request that may not reach `kind`'s handler (403: access_refusal; 413: a body
  /// over control_body_limit for a route other than inference); true when it did.
  bool refused(route::kind_t kind) {
    if (auto why = access_refusal(kind)) {
      send_error(http::status::forbidden, *why);
      return true;
    }
    if (kind != route::model_infer && request_.body().size() > control_body_limit) {
      send_error(http::status::payload_too_large,
                 "the body of " + std::string(request_.method_string()) + " "
                   + std::string(request_.target()) + " may be at most "
                   + std::to_string(control_body_limit) + " bytes, got "
                   + std::to_string(request_.body().size()));
      return true;
    }
    return false;
  }

  /// Whether the request's method is the route's (GET's also answers HEAD: send_body); answers
  /// 405 where it is not.
  bool method_allowed(const route_spec& spec) {
    auto method = request_.method();
    if (method == spec.method || (spec.method == http::verb::get && method == http::verb::head))
      return true;
    auto v = spec.method;
    allow_ = v == http::verb::get ? "GET, HEAD" : std::string(http::to_string(v));
    send_error(http::status::method_not_allowed,
               std::string(request_.method_string()) + " is not allowed on "
                 + std::string(request_.target()) + "; use " + std::string(http::to_string(v)));
    return false;
  }

  /// Draining, inference and readiness are answered 503; true when this one was.
  bool refused_while_draining(const route& r) {
    if (!srv_.draining.load()
        || (r.kind != route::model_infer && r.kind != route::health_ready
            && r.kind != route::model_ready))
      return false;
    if (r.kind == route::model_infer)
      if (auto* mm = srv_.stats->model(r.model))
        account(*mm, errc::not_ready);
    send_error(http::status::service_unavailable,
               "not available: the server is shutting down; send the request to another replica "
               "or try again");
    return true;
  }

  using handler = void (session::*)(route&);

  /// The handler of each route of the route table (net/http/routes).
  static handler handler_of(route::kind_t kind) {
    static const std::pair<route::kind_t, handler> rows[] = {
      {route::health_live, &session::on_live},
      {route::health_ready, &session::on_ready},
      {route::server_meta, &session::on_server_meta},
      {route::model_meta, &session::on_model_meta},
      {route::model_ready, &session::on_ready},
      {route::model_infer, &session::on_infer},
      {route::model_stats, &session::on_model_stats},
      {route::model_config, &session::on_model_config},
      {route::all_stats, &session::on_all_stats},
      {route::prometheus, &session::on_prometheus},
      {route::admin_faults, &session::on_fault},
      {route::repository_index, &session::on_repository_index},
      {route::shm_status, &session::on_shm},
      {route::shm_register, &session::on_shm},
      {route::shm_unregister, &session::on_shm},
      {route::model_load, &session::on_model_control},
      {route::model_unload, &session::on_model_control},
      {route::model_instances, &session::on_model_instances},
    };
    static const auto by_kind = [] { // (every request asks: indexed by kind, once)
      std::array<handler, route::model_instances + 1> index{};
      for (auto& [k, h] : rows)
        index[k] = h;
      return index;
    }();
    return static_cast<std::size_t>(kind) < by_kind.size() ? by_kind[kind] : nullptr;
  }

  void handle() {
    auto r = parse_route(request_.target());
    current_model_ = r.model;
    if (refused(r.kind) || refused_while_draining(r))
      return;
    auto* spec = spec_of(r.kind);
    auto h = handler_of(r.kind);
    if (!spec || !h)
      return send_error(http::status::not_found, "no route for "
                                                   + std::string(request_.method_string()) + " "
                                                   + std::string(request_.target()));
    if (method_allowed(*spec))
      (this->*h)(r);
  }

  void on_live(route&) { send_json(http::status::ok, "{\"live\":true}"); }

  void on_ready(route& r) { ask_ready(r.model, r.version); } // (no model: the server's)

  void on_server_meta(route&) {
    std::string body = "{\"name\":\"actorserve\",\"version\":\"" ACTORSERVE_VERSION "\",\"extensions\":[";
    for (auto e : server_extensions(http_.allow_shared_memory))
      body += (body.back() == '[' ? "" : ",") + kserve::quote(e);
    send_json(http::status::ok, body + "]}");
  }

  void on_model_meta(route& r) {
    if (auto* m = addressed_model(r))
      send_json(http::status::ok, kserve::encode_model_metadata(*m));
  }

  void on_model_config(route& r) {
    if (auto* m = addressed_model(r))
      send_json(http::status::ok, kserve::encode_model_config(*m));
  }

  void on_model_stats(route& r) {
    if (addressed_model(r))
      send_json(http::status::ok, srv_.stats->statistics_json(r.model));
  }

  void on_all_stats(route&) { send_json(http::status::ok, srv_.stats->statistics_json("")); }

  void on_prometheus(route&) {
    send_body(http::status::ok, srv_.stats->prometheus_text(), std::nullopt,
              "text/plain; version=0.0.4; charset=utf-8");
  }

  void on_infer(route& r) { infer(std::move(r)); }

  void on_fault(route&) { arm_fault(); }

  void on_repository_index(route&) { repository_index(); }

  void on_model_control(route& r) { model_control(r.model, r.kind == route::model_load); }
  void on_model_instances(route& r) { model_instances(r.model); }

  void on_shm(route& r) {
    if (!shm_allowed())
      return;
    if (r.kind == route::shm_status)
      shm_status(r.region);
    else if (r.kind == route::shm_register)
      shm_register(r.region);
    else
      shm_unregister(r.region);
  }

  /// Whether the deployment allows shared memory; answers 403 where it does not.
  bool shm_allowed() {
    if (http_.allow_shared_memory)
      return true;
    send_error(http::status::forbidden,
               "the system shared memory extension is disabled on this server (its deployment's "
               "server.http.allow_shared_memory)");
    return false;
  }

  /// GET /v2/systemsharedmemory[/region/{name}]/status: the registered regions (or the one).
  void shm_status(const std::string& name) {
    if (name.empty())
      return send_json(http::status::ok, shm_status_json(srv_.shm.list()));
    auto region = srv_.shm.find(name);
    if (!region)
      return send_error(http::status::not_found, error_message(region.error()));
    send_json(http::status::ok, shm_status_json({*region}));
  }

  /// POST /v2/systemsharedmemory/region/{name}/register {"key", "offset"?, "byte_size"}.
  void shm_register(const std::string& name) {
    auto reg = kserve::decode_shm_registration(request_.body().view());
    if (!reg)
      return send_error(http::status::bad_request,
                        "registering shared memory region '" + name + "': "
                          + error_message(reg.error())
                          + "; expected {\"key\": \"/name\", \"offset\": bytes (optional), "
                            "\"byte_size\": bytes}");
    auto& [k, off, n] = *reg;
    std::optional<uid_t> owner;
    if (http_.shared_memory_owner_check) { // the client's user, from the kernel's socket table
      beast::error_code ec1, ec2;
      auto peer = lowest().socket().remote_endpoint(ec1);
      auto local = lowest().socket().local_endpoint(ec2);
      owner = ec1 || ec2 ? std::nullopt : local_peer_uid(peer.port(), local.port());
      if (!owner)
        return send_error(http::status::forbidden,
                          "registering shared memory region '" + name + "': the client's user "
                          "cannot be told (a client on another host?); shared memory is for "
                          "clients on this host (http.shared_memory_owner_check)");
    }
    auto region = srv_.shm.add(name, k, off, n, owner);
    if (!region)
      return send_error(static_cast<http::status>(http_status(region.error())),
                        error_message(region.error()));
    logging::info({"http", "", 0, span_.context().trace_id},
                  "registered shared memory region '{}': {} bytes at {} of {}", name, n, off, k);
    send_json(http::status::ok, shm_status_json({*region}));
  }

  /// POST /v2/systemsharedmemory[/region/{name}]/unregister: that region, or every one.
  /// Unregistering a name not registered is no error (it is not registered afterwards either).
  void shm_unregister(const std::string& name) {
    auto removed = srv_.shm.remove(name);
    std::string body = "{\"unregistered\":[";
    for (std::size_t i = 0; i < removed.size(); ++i) {
      body += (i > 0 ? "," : "") + kserve::quote(removed[i]);
      logging::info({"http", "", 0, span_.context().trace_id},
                    "unregistered shared memory region '{}'", removed[i]);
    }
    send_json(http::status::ok, body + "]}");
  }

  /// POST /v2/repository/models/{m}/unload and /load (Triton's model repository extension, as
  /// its clients' unload_model and load_model ask; net/model_control does it): answered with
  /// the model's state once it is unloaded, or loaded again and ready.
  void model_control(const std::string& model, bool load) {
    if (!request_.body().view().empty()) {
      boost::system::error_code ec;
      auto doc = boost::json::parse(request_.body().view(), ec);
      const boost::json::object* params = nullptr;
      if (!ec && doc.is_object())
        if (auto* p = doc.get_object().if_contains("parameters"); p && p->is_object())
          params = &p->get_object();
      bool ok = !ec && doc.is_object() && doc.get_object().size() == (params ? 1u : 0u);
      if (ok && params)
        for (auto& kv : *params)
          ok = ok && kv.key() == "unload_dependents" && kv.value().is_bool();
      if (!ok)
        return send_error(http::status::bad_request,
                          std::string("expected an empty body or {\"parameters\": "
                                      "{\"unload_dependents\": bool}}; ")
                            + actorserve::model_control::parameters_expected);
    }
    auto done = [self = this->shared_from_this(), model](caf::expected<std::string> state) {
      asio::post(self->stream_.get_executor(), [self, model, state = std::move(state)] {
        if (!state)
          return self->send_error(static_cast<http::status>(http_status(state.error())),
                                  error_message(state.error()));
        self->send_json(http::status::ok, "{\"name\":" + kserve::quote(model) + ",\"state\":"
                                            + kserve::quote(*state) + "}");
      });
    };
    if (load)
      srv_.control.load(model, std::move(done));
    else
      srv_.control.unload(model, std::move(done));
  }

  /// POST /v2/repository/models/{m}/instances with {"instances": n} (with autoscaling: pinned
  /// there), or with autoscaling {"min_instances": a, "max_instances": b}: the model's batcher
  /// starts or drains instances to match (actors/batcher.hpp). Answered with the count now
  /// wanted.
  void model_instances(const std::string& model) {
    auto bounds = kserve::parse_instances_request(request_.body().view());
    if (!bounds)
      return send_error(http::status::bad_request, error_message(bounds.error()));
    auto self = this->shared_from_this();
    auto done = [self, model](caf::expected<uint32_t> desired) {
      asio::post(self->stream_.get_executor(), [self, model, desired = std::move(desired)] {
        if (!desired)
          return self->send_error(static_cast<http::status>(http_status(desired.error())),
                                  error_message(desired.error()));
        self->send_json(http::status::ok, "{\"name\":" + kserve::quote(model)
                                            + ",\"desired_instances\":"
                                            + std::to_string(*desired) + "}");
      });
    };
    ask<uint32_t>(srv_.sys, srv_.gateway->get(), std::chrono::seconds(10), done,
                  scale_atom::value, model, bounds->first, bounds->second);
  }

  /// The model (and version) a route names, or nullptr after answering 404.
  const model_config* addressed_model(const route& r) {
    auto m = srv_.infer->addressed(r.model, r.version);
    if (!m) {
      send_error(static_cast<http::status>(http_status(m.error())), error_message(m.error()));
      return nullptr;
    }
    return *m;
  }

  void ask_ready(std::string model, std::string version) {
    auto self = this->shared_from_this();
    auto done = [self, model](caf::expected<bool> ready) {
      asio::post(self->stream_.get_executor(), [self, model, ready = std::move(ready)] {
        if (!ready)
          return self->send_error(static_cast<http::status>(http_status(ready.error())),
                                  error_message(ready.error()));
        auto body = std::string("{") + (model.empty() ? "" : "\"name\":" + kserve::quote(model) + ",")
                    + "\"ready\":" + (*ready ? "true" : "false") + "}";
        self->send_json(*ready ? http::status::ok : http::status::service_unavailable, body);
      });
    };
    if (model.empty())
      ask<bool>(srv_.sys, srv_.gateway->get(), std::chrono::seconds(5), done, ready_atom::value);
    else
      ask<bool>(srv_.sys, srv_.gateway->get(), std::chrono::seconds(5), done, ready_atom::value,
                std::move(model), std::move(version));
  }

  /// POST /v2/repository/index (Triton's model repository extension, as its clients'
  /// get_model_repository_index asks it): every model with its version and state, READY or
  /// UNAVAILABLE (with a reason), as the gateway sees them; {"ready": true} lists the ready ones.
  void repository_index() {
    bool only_ready = false;
    if (!request_.body().view().empty()) {
      boost::system::error_code ec;
      auto doc = boost::json::parse(request_.body().view(), ec);
      auto* ready = !ec && doc.is_object() ? doc.get_object().if_contains("ready") : nullptr;
      if (ec || !doc.is_object() || (ready && !ready->is_bool()))
        return send_error(http::status::bad_request,
                          "expected an empty body or a JSON object with a boolean 'ready'");
      only_ready = ready && ready->get_bool();
    }
    srv_.control.index(only_ready, [self = this->shared_from_this()](
                                     std::vector<actorserve::model_control::model_state> models) {
      boost::json::array out;
      for (auto& m : models) {
        boost::json::object o{{"name", m.name}, {"version", m.version}, {"state", m.state}};
        if (!m.reason.empty())
          o["reason"] = m.reason;
        out.emplace_back(std::move(o));
      }
      asio::post(self->stream_.get_executor(), [self, body = boost::json::serialize(out)] {
        self->send_json(http::status::ok, body);
      });
    });
  }

  /// POST /v2/admin/faults {"model", "worker"?, "fault", "count"?, "probability"?}: arms a fault
  /// in a worker. Answers 404 unless server.fault_injection is enabled.
  void arm_fault() {
    if (!srv_.cfg->server.fault_injection)
      return send_error(http::status::not_found,
                        "the fault injection endpoint is disabled (server.fault_injection)");
    boost::system::error_code ec;
    auto doc = boost::json::parse(request_.body().view(), ec);
    if (ec || !doc.is_object())
      return send_error(http::status::bad_request, "expected a JSON object with model and fault");
    auto& o = doc.get_object();
    auto str = [&](const char* key) -> std::string {
      auto* v = o.if_contains(key);
      return v && v->is_string() ? std::string(v->get_string()) : std::string();
    };
    fault_spec spec;
    auto model = str("model");
    spec.worker = str("worker");
    spec.kind = str("fault");
    if (auto* v = o.if_contains("count"); v && v->is_int64() && v->get_int64() > 0)
      spec.count = static_cast<uint32_t>(v->get_int64());
    if (auto* v = o.if_contains("probability"); v && v->is_number())
      spec.probability = v->to_number<double>();
    if (model.empty())
      return send_error(http::status::bad_request, "'model' is required");
    if (!is_fault_kind(spec.kind))
      return send_error(http::status::bad_request, "'fault' must be " + std::string(fault_kinds_text)
                                                     + ", got \"" + spec.kind + "\"");
    if (!(spec.probability > 0 && spec.probability <= 1))
      return send_error(http::status::bad_request, "'probability' must be in (0, 1]");
    auto self = this->shared_from_this();
    auto kind = spec.kind;
    auto count = spec.count;
    ask<std::string>(srv_.sys, srv_.gateway->get(), std::chrono::seconds(5),
                     [self, kind, count](caf::expected<std::string> worker) {
                       asio::post(self->stream_.get_executor(), [self, kind, count, worker] {
                         if (!worker)
                           return self->send_error(
                             static_cast<http::status>(http_status(worker.error())),
                             error_message(worker.error()));
                         self->send_json(http::status::ok,
                                         "{\"worker\":" + kserve::quote(*worker) + ",\"fault\":"
                                           + kserve::quote(kind) + ",\"count\":"
                                           + std::to_string(count) + "}");
                       });
                     },
                     fault_atom::value, std::move(model), std::move(spec));
  }

  void infer(route r) {
    span_route_ = r.version.empty() ? "POST /v2/models/{model_name}/infer"
                                    : "POST /v2/models/{model_name}/versions/{model_version}/infer";
    std::optional<std::size_t> json_length;
    if (auto it = request_.find("Inference-Header-Content-Length"); it != request_.end()) {
      std::size_t n = 0;
      auto v = it->value();
      auto res = std::from_chars(v.data(), v.data() + v.size(), n);
      if (res.ec != std::errc{} || res.ptr != v.data() + v.size())
        return send_error(http::status::bad_request,
                          "Inference-Header-Content-Length must be a non-negative integer, got '"
                            + std::string(v) + "'");
      json_length = n;
    }
    // Binary inputs stay where they arrived: the tensors are views of the body, which they keep.
    auto body = std::move(request_.body());
    request_.body() = {};
    const kserve::memory_budget budget{&srv_.stats->http_body_bytes,
                                       http_.max_inflight_body_bytes, reserved_};
    auto decoded = kserve::decode_request(body.view(), json_length, body.owner(), &budget,
                                          http_.allow_shared_memory ? &srv_.shm : nullptr);
    body = {};
    auto* mm = srv_.stats->model(r.model);
    if (!decoded) {
      if (mm)
        account(*mm, error_code(decoded.error()));
      return send_error(static_cast<http::status>(http_status(decoded.error())),
                        error_message(decoded.error()));
    }
    auto options = srv_.infer->take_options(*decoded, r.model);
    decoded->request.model = std::move(r.model);
    decoded->request.version = std::move(r.version);
    span_.stamp(decoded->request);
    gone_ = std::make_shared<std::atomic<bool>>(false);
    decoded->request.cancelled = gone_;
    options_ = options;
    model_stats_ = mm;
    // (The answer waits in the session, so that both callbacks hold only the session: within
    // std::function's own storage, no allocation per request for either.)
    srv_.infer->submit(std::move(decoded->request), options,
                       [self = this->shared_from_this()](caf::expected<infer_response> res) {
                         self->answer_.emplace(std::move(res));
                         self->inbox_->post([self] {
                           self->stop_watching();
                           auto options = std::move(self->options_);
                           self->answer(std::move(*self->answer_), *options, self->model_stats_);
                           self->answer_.reset();
                         });
                       });
    if (!options->cache_hit) // (watched if it waits long: waiting_clients.hpp)
      waiting_->add(*this);
  }

  /// Answers an inference request: its shared memory outputs written, the outcome counted, the
  /// response encoded and sent (unless its client left).
  void answer(caf::expected<infer_response> res, const kserve::decoded_request& options,
              model_metrics* mm) {
    if (res && !options.shm_outputs.empty())
      if (auto err = kserve::write_shm_outputs(*res, options))
        res = std::move(err);
    if (mm)
      account(*mm, res ? errc::none : error_code(res.error()));
    if (client_gone_) { // nobody to answer: the session ends (and closes the socket) here
      span_error_ = "the client closed its connection before the answer";
      return end_span(499); // (nginx's code for it; never sent)
    }
    if (!res)
      return send_error(static_cast<http::status>(http_status(res.error())),
                        error_message(res.error()));
    auto total = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now() - received_).count();
    auto enc = kserve::encode_response(*res, options, total);
    span_answer_ = &*res;
    send_body(http::status::ok, std::move(enc.body), enc.json_length);
    span_answer_ = nullptr;
  }

  /// Ends an inference request's span with its answer's status (HTTP's semantic conventions:
  /// a 5xx is the server's error; a 4xx the client's, which fails the request but not the span).
  void end_span(unsigned status) {
    if (!span_route_)
      return;
    request_span::outcome how;
    how.failed = status >= 400;
    how.status_error = status >= 500;
    how.message = std::move(span_error_);
    how.response = span_answer_;
    std::string_view name = span_route_; // "POST " and the route: HTTP's span name
    span_route_ = nullptr;
    auto sp = span_.end(tracing::span_kind::server, name, how);
    if (!sp)
      return;
    sp->set("http.request.method", "POST")
      .set("http.route", std::string(name.substr(5)))
      .set("url.path", std::string(request_.target()))
      .set("url.scheme", http_.tls.enabled() ? "https" : "http")
      .set("network.protocol.version", request_.version() == 10 ? "1.0" : "1.1")
      .set("http.response.status_code", static_cast<int64_t>(status))
      .set("client.address", client_)
      .set("actorserve.model", current_model_);
    if (how.failed)
      sp->set("error.type", std::to_string(status));
    tracing::record(std::move(*sp));
  }

  /// The request has waited long enough to watch its client (waiting_clients.hpp).
  void watch_now() override { watch_client(gone_); }

  /// While a request waits for its answer: if the client closes its connection, mark the
  /// request so that the batcher drops it rather than running it. A peek tells the close (end
  /// of stream, or a broken connection) from bytes (a pipelined request: the client is there)
  /// and from a stale readiness event (nothing to read: watch on).
  void watch_client(std::shared_ptr<std::atomic<bool>> gone) {
    watching_ = true;
    lowest().socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this(),
                                                         gone](beast::error_code ec) {
      self->watching_ = false;
      if (ec) // stopped: the answer came first
        return;
      char byte;
      auto n = ::recv(self->lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0)
        return;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return self->watch_client(std::move(gone));
      self->client_gone_ = true;
      gone->store(true, std::memory_order_relaxed);
    });
  }

  void stop_watching() {
    waiting_->remove(*this);
    if (watching_) {
      beast::error_code ignored;
      lowest().socket().cancel(ignored);
    }
  }

  /// Counts a finished inference request of a known model: outcome, latency, Triton statistics.
  void account(model_metrics& mm, errc outcome) { inference::account(&mm, outcome, received_); }

  void send_error(http::status status, const std::string& message) {
    if (span_route_)
      span_error_ = message;
    if (static_cast<unsigned>(status) >= 500)
      logging::warn({"http", current_model_, 0, span_.context().trace_id}, "{} {}: {}",
                    static_cast<unsigned>(status), std::string(request_.target()), message);
    else
      logging::debug({"http", current_model_, 0, span_.context().trace_id}, "{} {}: {}",
                     static_cast<unsigned>(status), std::string(request_.target()), message);
    send_json(status, kserve::error_body(message));
  }

  void send_json(http::status status, std::string body) {
    send_body(status, std::move(body), std::nullopt);
  }

  void send_body(http::status status, std::string body, std::optional<std::size_t> json_length,
                 const char* content_type = "application/json") {
    srv_.stats->count_http_response(static_cast<unsigned>(status));
    response_head head{head_, static_cast<unsigned>(status),
                       request_.version() ? request_.version() : 11u};
    head.field("Server", server_name);
    if (json_length)
      head.field("Content-Type", "application/octet-stream")
        .field("Inference-Header-Content-Length", *json_length);
    else
      head.field("Content-Type", content_type);
    if (status == http::status::service_unavailable)
      head.field("Retry-After", "1");
    if (status == http::status::method_not_allowed && !allow_.empty())
      head.field("Allow", allow_); // (RFC 9110: a 405 names the methods allowed)
    if (!span_.context().trace_id.empty()) {
      head.field("traceparent", span_.context().header());
      if (!span_.tracestate().empty())
        head.field("tracestate", span_.tracestate());
    }
    end_span(static_cast<unsigned>(status));
    if (srv_.draining.load())
      keep_alive_ = false;
    if (worth_compressing(body.size(), json_length.has_value(), http_.compression_level,
                          http_.compression_min_bytes)) {
      head.field("Vary", "Accept-Encoding");
      if (answer_coding_ != content_coding::identity) {
        auto packed = encode_content(body, answer_coding_,
                                     static_cast<int>(http_.compression_level));
        if (packed.size() < body.size()) { // (binary tensors may not shrink)
          body = std::move(packed);
          head.field("Content-Encoding", to_string(answer_coding_));
        }
      }
    }
    head.finish(body.size(), keep_alive_); // (a HEAD answer: the same header, Content-Length
    if (request_.method() == http::verb::head) // included, and no body)
      body.clear();
    out_body_ = std::move(body);
    lowest().expires_after(std::chrono::milliseconds(http_.body_timeout_ms));
    std::array<asio::const_buffer, 2> out{asio::buffer(head_), asio::buffer(out_body_)};
    asio::async_write(stream_, out, [self = this->shared_from_this()](beast::error_code ec,
                                                                      std::size_t) {
      self->out_body_ = std::string{}; // (an answer may be large: not kept by an idle connection)
      self->on_write(ec);
    });
  }

  /// Takes `n` bytes of the server's budget for request bodies (http.max_inflight_body_bytes)
  /// until this request is answered; false when they would exceed it.
  /// Counts `n` more bytes of this request's body in the server's budget; false (nothing
  /// counted) where they would pass it.
  bool charge_body(uint64_t n) {
    auto before = srv_.stats->http_body_bytes.fetch_add(n);
    if (before + n > http_.max_inflight_body_bytes) {
      srv_.stats->http_body_bytes.fetch_sub(n);
      return false;
    }
    reserved_ += n;
    return true;
  }

  void release_body() {
    if (reserved_ > 0) {
      srv_.stats->http_body_bytes.fetch_sub(reserved_);
      reserved_ = 0;
    }
  }

  void send_body_limit_error(uint64_t n) {
    send_error(http::status::service_unavailable,
               "overloaded: the server holds " + std::to_string(srv_.stats->http_body_bytes.load())
                 + " bytes of request bodies and this one's " + std::to_string(n)
                 + " would pass its limit of " + std::to_string(http_.max_inflight_body_bytes)
                 + " (http.max_inflight_body_bytes); try again");
  }

  void on_write(beast::error_code ec) {
    release_body();
    if (counted_) {
      counted_ = false;
      srv_.in_progress.fetch_sub(1);
    }
    if (ec) {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    if (!keep_alive_)
      return linger_close();
    request_ = {};
    span_.clear();
    span_route_ = nullptr;
    allow_.clear();
    answer_coding_ = content_coding::identity;
    read_header();
  }

  /// Closes after the last answer without losing it: a client still sending a body the server
  /// refused (413, an error before its body was read) would otherwise see its connection reset,
  /// and many clients (urllib among them) then report a broken pipe, not the answer. So the
  /// server only ends its sending side and reads and drops what still arrives, until the client
  /// closes too or for at most linger_ms (as nginx's lingering close does).
  void linger_close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().expires_after(std::chrono::milliseconds(linger_ms));
    buffer_.clear();
    discard();
  }

  void discard() {
    lowest().async_read_some(buffer_.prepare(read_buffer_bytes), // (bytes dropped: TLS or not)
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) { // end of stream, reset or linger_ms over (it closes)
                                beast::error_code ignored;
                                self->lowest().socket().close(ignored);
                                return;
                              }
                              self->discard();
                            });
  }

  std::shared_ptr<void> keep_;
  Stream stream_;
  http_server::impl& srv_;
  const http_config& http_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<shared_body>> parser_;
  http::request<shared_body> request_;
  bool keep_alive_ = true;
  bool counted_ = false; // the current request counts in srv_.in_progress until answered
  bool watching_ = false; // watch_client's wait is pending
  bool client_gone_ = false; // the client closed the connection while its request waited
  std::string client_; // its address, holding a place in srv_.connections
  loop_inbox* inbox_ = nullptr; // its loop's (answers_through)
  waiting_clients* waiting_ = nullptr; // its loop's
  std::shared_ptr<std::atomic<bool>> gone_; // the waiting request's: its client left
  // The waiting inference request's options and model series (set before it is submitted), and
  // its answer (set on the answering thread, read on the loop's once the inbox hands it over).
  inference::options_ptr options_;
  model_metrics* model_stats_ = nullptr;
  std::optional<caf::expected<infer_response>> answer_;
  std::string head_;     // the answer being written: its head (capacity kept between answers)
  std::string out_body_; // and its body
  uint64_t reserved_ = 0; // its body's bytes in srv_.stats->http_body_bytes until answered
  std::chrono::steady_clock::time_point body_started_; // its header read: the body's clock
  char* body_at_ = nullptr;     // a body of known length: where it goes,
  std::size_t body_length_ = 0; // how long it is
  std::size_t body_read_ = 0;   // and how much of it has come
  uint64_t requests_ = 0;
  std::chrono::steady_clock::time_point received_; // when the current request's body was read
  request_span span_; // the current request's W3C trace, answered in its traceparent header
  const char* span_route_ = nullptr; // an inference request's span name while its span is open
  std::string span_error_; // the error it was answered with, for its span
  const infer_response* span_answer_ = nullptr; // its answer, while it is being sent
  std::string current_model_; // the model the current request addresses, for logs
  std::string allow_; // the methods a 405 answer names
  content_coding coding_ = content_coding::identity; // the current request body's
  content_coding answer_coding_ = content_coding::identity; // its answer's (Accept-Encoding)
};

} // namespace

void http_server::impl::accept() {
  if (!acceptor.is_open()) // (closed: draining or stopping)
    return;
  auto i = next_loop++ % loops.size();
  // (no strand: the loop has one thread, so a connection's handlers never run at once)
  acceptor.async_accept(loops[i]->get_executor(), [this, i](beast::error_code ec,
                                                            loop_socket socket) {
    if (ec == asio::error::operation_aborted)
      return;
    if (ec == asio::error::connection_aborted) // the client gave up before it was accepted
      return accept();
    if (ec)
      return accept_failed(ec);
    accept_backoff = std::chrono::milliseconds(0);
    socket.set_option(tcp::no_delay(true), ec);
    auto peer = socket.remote_endpoint(ec);
    auto client = ec ? std::string("unknown") : peer.address().to_string();
    if (auto why = connections.admit(client)) {
      refuse_connection(std::move(socket), *why);
      return accept();
    }
#if ACTORSERVE_WITH_HTTPS
    if (tls) {
      auto s = std::make_shared<session<tls_stream>>(*this, tls, std::move(socket), *tls);
      s->holds_place_of(std::move(client));
      s->answers_through(*inboxes[i], *waiting[i]);
      s->start();
    } else
#endif
    {
      auto s = std::make_shared<session<tcp_stream>>(*this, nullptr, std::move(socket));
      s->holds_place_of(std::move(client));
      s->answers_through(*inboxes[i], *waiting[i]);
      s->start();
    }
    accept();
  });
}

/// A connection past http.max_connections or .max_connections_per_client: answered 503 and
/// closed (over HTTPS only closed: no handshake is spent on it).
void http_server::impl::refuse_connection(loop_socket socket, const std::string& why) {
  stats->count_http_response(503);
  logging::debug({"http"}, "connection refused: {}", why);
  auto stream = std::make_shared<tcp_stream>(std::move(socket));
#if ACTORSERVE_WITH_HTTPS
  if (tls) {
    beast::error_code ignored;
    stream->socket().close(ignored);
    return;
  }
#endif
  auto body = kserve::error_body("too many connections: " + why + "; try again");
  auto out = std::make_shared<std::string>(); // the head, then the body
  response_head{*out, 503, 11}
    .field("Server", server_name)
    .field("Content-Type", "application/json")
    .field("Retry-After", "1")
    .finish(body.size(), false);
  *out += body;
  stream->expires_after(std::chrono::seconds(1));
  asio::async_write(*stream, asio::buffer(*out), [stream, out](beast::error_code, std::size_t) {
    beast::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
  });
}

/// Out of file descriptors (EMFILE/ENFILE), or another failure of accept: the connection waits
/// in the listen backlog, so try again after a pause (10 ms doubling to 500 ms) instead of
/// spinning on the error, and report it at most once a second.
void http_server::impl::accept_failed(const beast::error_code& ec) {
  using namespace std::chrono;
  accept_backoff = std::clamp(accept_backoff * 2, milliseconds(10), milliseconds(500));
  ++accept_failures;
  auto now = steady_clock::now();
  if (now - accept_reported >= seconds(1)) {
    logging::warn({"http"}, "cannot accept connections: {} ({} failure(s) since the last report; "
                            "next try in {} ms; open connections are served)",
                  ec.message(), accept_failures, accept_backoff.count());
    accept_reported = now;
    accept_failures = 0;
  }
  accept_timer.expires_after(accept_backoff);
  accept_timer.async_wait([this](beast::error_code wait_ec) {
    if (!wait_ec)
      accept();
  });
}

void http_server::impl::close_acceptor() {
  asio::post(accept_strand, [this] {
    beast::error_code ignored;
    acceptor.close(ignored);
    accept_timer.cancel();
#if ACTORSERVE_WITH_HTTPS
    tls_timer.cancel();
#endif
  });
}

http_server::http_server(std::shared_ptr<inference> infer)
  : impl_(std::make_unique<impl>(std::move(infer))) {
}

http_server::~http_server() {
  stop();
}

namespace {

#if ACTORSERVE_WITH_HTTPS
/// server.http.tls's context: TLS 1.2 or later, the certificate (chain) and its key, and with a
/// client CA only clients presenting a certificate it signed. An error names the file at fault.
caf::expected<std::shared_ptr<asio::ssl::context>> make_tls_context(const server_tls& t) {
  using ssl = asio::ssl::context;
  auto out = std::make_shared<ssl>(ssl::tls_server);
  auto& ctx = *out;
  ctx.set_options(ssl::default_workarounds | ssl::no_sslv2 | ssl::no_sslv3 | ssl::no_tlsv1
                  | ssl::no_tlsv1_1 | ssl::single_dh_use);
  beast::error_code ec;
  auto bad = [&](const std::string& key, const std::string& path, const std::string& why) {
    return make_error(errc::invalid_config,
                      "server.http.tls." + key + ": cannot use \"" + path + "\": " + why);
  };
  ctx.use_certificate_chain_file(t.certificate, ec);
  if (ec)
    return bad("certificate", t.certificate, ec.message());
  ctx.use_private_key_file(t.key, ssl::pem, ec);
  if (ec)
    return bad("key", t.key, ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    return bad("key", t.key, "it is not the key of the certificate");
  if (!t.client_ca.empty()) {
    ctx.load_verify_file(t.client_ca, ec);
    if (ec)
      return bad("client_ca", t.client_ca, ec.message());
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  return out;
}

/// What tells a file's new contents from its old (size, inode and modification time; a
/// Kubernetes secret's files change by a symbolic link swap, which stat follows).
std::vector<std::string> file_stamps(const server_tls& t) {
  std::vector<std::string> out;
  for (auto* path : {&t.certificate, &t.key, &t.client_ca}) {
    struct stat st {};
    if (path->empty() || ::stat(path->c_str(), &st) != 0) {
      out.emplace_back();
      continue;
    }
    out.push_back(std::to_string(st.st_size) + "/" + std::to_string(st.st_ino) + "/"
                  + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
  }
  return out;
}
#endif

} // namespace

#if ACTORSERVE_WITH_HTTPS
/// Every tls.reload_interval_ms: when the certificate, key or client CA files changed, a new
/// context for new connections (those open keep theirs). A new set that does not load (a
/// rotation half written, a key that is not the certificate's) leaves the old in use, and is
/// tried again when the files change again.
void http_server::impl::watch_tls() {
  auto& t = cfg->server.http.tls;
  if (t.reload_interval_ms == 0 || !acceptor.is_open())
    return;
  tls_timer.expires_after(std::chrono::milliseconds(t.reload_interval_ms));
  tls_timer.async_wait([this](beast::error_code ec) {
    if (ec)
      return;
    auto& t = cfg->server.http.tls;
    auto stamps = file_stamps(t);
    if (stamps != tls_stamps) {
      tls_stamps = std::move(stamps);
      if (auto ctx = make_tls_context(t)) {
        tls = std::move(*ctx);
        stats->count_tls_reload(true);
        logging::info({"http"}, "TLS certificate files changed: new connections use them");
      } else {
        stats->count_tls_reload(false);
        logging::warn({"http"}, "TLS certificate files changed but do not load ({}); new "
                                "connections keep the previous ones", error_message(ctx.error()));
      }
    }
    watch_tls();
  });
}
#endif

caf::expected<std::string> http_server::start() {
  auto& h = impl_->cfg->server.http;
  if (h.tls.enabled()) {
#if ACTORSERVE_WITH_HTTPS
    impl_->tls_stamps = file_stamps(h.tls);
    auto ctx = make_tls_context(h.tls);
    if (!ctx)
      return std::move(ctx.error());
    impl_->tls = std::move(*ctx);
#else
    return make_error(errc::invalid_config, "server.http.tls is set but this build has no HTTPS "
                                            "(built without OpenSSL: libssl-dev)");
#endif
  }
  beast::error_code ec;
  auto address = asio::ip::make_address(h.address, ec);
  if (ec)
    return make_error(errc::invalid_config,
                      "server.http.address: not an IP address: \"" + h.address + "\"");
  tcp::endpoint ep{address, h.port};
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec)
    acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    acc.bind(ep, ec);
  if (!ec)
    acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(errc::invalid_config, "cannot listen on " + h.address + ":"
                                              + std::to_string(h.port) + ": " + ec.message());
  auto port = acc.local_endpoint().port();
  while (impl_->loops.size() < h.io_threads)
    impl_->loops.push_back(std::make_unique<asio::io_context>(1));
  for (auto& loop : impl_->loops) {
    impl_->inboxes.push_back(std::make_unique<loop_inbox>(*loop));
    impl_->waiting.push_back(std::make_unique<waiting_clients>(*loop, client_watch_after));
  }
  for (auto& loop : impl_->loops)
    impl_->work.push_back(asio::make_work_guard(*loop));
  impl_->accept();
#if ACTORSERVE_WITH_HTTPS
  if (impl_->tls)
    asio::post(impl_->accept_strand, [this] { impl_->watch_tls(); });
#endif
  for (auto& loop : impl_->loops)
    impl_->threads.emplace_back([&loop = *loop] { loop.run(); });
  return "listening on " + std::string{h.tls.enabled() ? "https" : "http"} + "://" + h.address
         + ":" + std::to_string(port);
}

void http_server::begin_drain() {
  if (!impl_ || impl_->threads.empty() || impl_->draining.exchange(true))
    return;
  impl_->close_acceptor();
}

std::size_t http_server::in_flight() const {
  return impl_ ? impl_->in_progress.load() : 0;
}

void http_server::stop() {
  if (!impl_ || impl_->threads.empty())
    return;
  impl_->control.stop();
  impl_->close_acceptor();
  impl_->work.clear();
  for (auto& loop : impl_->loops)
    loop->stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
  for (auto& w : impl_->waiting) // (before the inboxes drop their answers, and sessions with them)
    w->close();
  for (auto& inbox : impl_->inboxes)
    inbox->close();
}

} // namespace actorserve
