#include "net/queue/redis_ingress.hpp"

#include <pthread.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/scoped_actor.hpp>

#include "net/http_status.hpp"
#include "net/kserve/json_codec.hpp"
#include "net/queue/job.hpp"
#include "net/queue/redis_client.hpp"
#include "net/request_span.hpp"
#include "runtime/error.hpp"
#include "runtime/host.hpp"
#include "runtime/log.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace actorserve {

namespace {

constexpr std::size_t read_batch = 256;  // entries per XREADGROUP or XAUTOCLAIM, at most
constexpr std::size_t write_batch = 256; // answers per MULTI/EXEC, at most
constexpr auto block_time = 1000ms;      // XREADGROUP BLOCK: also how soon a drain stops reading
constexpr auto retry_initial = 50ms;     // a request the model could not take yet (not ready,
constexpr auto retry_max = 1000ms;       // its queue full) is sent again until its timeout
constexpr auto reconnect_initial = 100ms;

/// Failures that say "not now" rather than "not this request": the entry waits and tries again.
bool retriable(errc c) {
  return c == errc::not_ready || c == errc::overloaded || c == errc::escalated;
}

/// What the writer writes for one entry: its answer (none where the entry is gone from the
/// stream) and its acknowledgement.
struct outgoing {
  std::string entry_id;
  std::string reply_to; // empty: acknowledge only
  stream_fields fields;
  unsigned status = 0;
  stream_fields dead_letter; // an entry given up: what goes to the dead-letter stream, if any
};

/// One entry from its reading to its answer (only the job thread touches it).
struct held_entry {
  queue_job job;
  clock_type::time_point received;
  clock_type::time_point give_up; // retries of "not now" failures end here
  clock_type::duration backoff = retry_initial;
  infer_request request;
  inference::options_ptr options;
  uint64_t body_bytes = 0; // counted in the node's budget for request bodies
  model_metrics* mm = nullptr;
  std::optional<asio::steady_timer> timer;
  stream_fields dead_letter; // given up: the entry and why, for the dead-letter stream
  std::shared_ptr<const std::string> body; // the request (binary tensors are views of it)
  request_span span; // its trace: the entry's traceparent continued, or a new one
};

} // namespace

struct redis_ingress::impl : std::enable_shared_from_this<impl> {
  std::shared_ptr<inference> infer;
  queue_config cfg;
  std::string span_name = "process " + cfg.stream; // its entries' spans (messaging's convention)
  redis_connection::options redis_opts;
  queue_metrics* qm;
  asio::io_context ioc; // the job thread: entries decoded, retried, answers encoded
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread job_thread, reader_thread, writer_thread;

  std::atomic<bool> stopping{false}, draining{false}, reader_done{false};
  std::atomic<std::size_t> held{0}; // read, answer not yet written

  std::mutex mtx; // guards the fields below
  std::condition_variable reader_cv, writer_cv, stop_cv;
  std::size_t credit;          // entries the reader may still read (max_in_flight - held)
  std::deque<outgoing> out;    // answers for the writer
  redis_connection* reader_conn = nullptr; // interrupted by stop()

  impl(std::shared_ptr<inference> i, queue_config c)
    : infer(std::move(i)), cfg(std::move(c)), credit(cfg.max_in_flight) {
    if (cfg.consumer.empty())
      cfg.consumer = host_and_pid();
    redis_opts.host = cfg.redis_host;
    redis_opts.port = cfg.redis_port;
    redis_opts.db = cfg.redis_db;
    redis_opts.username = cfg.redis_username;
    if (!cfg.redis_password_env.empty()) {
      if (const char* pw = std::getenv(cfg.redis_password_env.c_str()))
        redis_opts.password = pw;
      else
        logging::warn({"queue"}, "queue '{}': redis.password_env names {}, which is not set: "
                                 "connecting without a password", cfg.name,
                      cfg.redis_password_env);
    }
    redis_opts.connect_timeout = std::chrono::milliseconds(cfg.connect_timeout_ms);
    qm = infer->stats()->queue(cfg.name);
    if (!qm)
      throw std::logic_error("redis_ingress: no metrics for queue " + cfg.name);
  }

  logging::fields log(std::string_view model = {}) const { return {"queue", model}; }

  /// Waits `d`, or less when stop() is called; false once stopping.
  bool pause(clock_type::duration d) {
    std::unique_lock<std::mutex> lk(mtx);
    return !stop_cv.wait_for(lk, d, [&] { return stopping.load(); });
  }

  // ---- connections ----------------------------------------------------------------------------

  std::unique_ptr<redis_connection> connect(const char* role, bool& reported) {
    auto conn = redis_connection::open(redis_opts);
    caf::error err;
    if (conn && std::string_view(role) == "reader") {
      // The group, and the stream, where missing: from the stream's start, so that entries
      // added before any node ran are served.
      auto r = (*conn)->command({"XGROUP", "CREATE", cfg.stream, cfg.group, "0", "MKSTREAM"});
      if (!r)
        err = std::move(r.error());
      else if (r->is_error() && r->str.rfind("BUSYGROUP", 0) != 0)
        err = make_error(errc::not_ready, "redis " + (*conn)->peer() + ": XGROUP CREATE "
                                            + cfg.stream + " " + cfg.group + ": " + r->str);
    } else if (!conn) {
      err = std::move(conn.error());
    }
    if (err) {
      qm->redis_errors.fetch_add(1, std::memory_order_relaxed);
      if (!reported)
        logging::warn(log(), "queue '{}' ({}): {}; retrying", cfg.name, role, error_message(err));
      reported = true;
      return nullptr;
    }
    if (reported)
      logging::info(log(), "queue '{}' ({}): connected to redis {} again", cfg.name, role,
                    (*conn)->peer());
    reported = false;
    qm->redis_up.fetch_add(1, std::memory_order_relaxed);
    return std::move(*conn);
  }

  void lost(std::unique_ptr<redis_connection>& conn, const char* role, const caf::error& why) {
    qm->redis_errors.fetch_add(1, std::memory_order_relaxed);
    if (!stopping)
      logging::warn(log(), "queue '{}' ({}): {}; reconnecting", cfg.name, role,
                    error_message(why));
    if (std::string_view(role) == "reader") {
      std::lock_guard<std::mutex> guard(mtx);
      reader_conn = nullptr;
    }
    conn.reset();
    qm->redis_up.fetch_sub(1, std::memory_order_relaxed);
  }

  // ---- reader ---------------------------------------------------------------------------------

  /// Whether the queue's model (without one: every model) takes requests; waits a little if not.
  /// Logs when that changes from `was`.
  bool ready(bool was) {
    bool ok = false;
    if (auto gw = infer->gateway()->get()) {
      caf::scoped_actor self{infer->system()};
      auto on_error = [](caf::error&) {};
      if (cfg.model.empty())
        self->request(gw, 1s, ready_atom::value).receive([&](bool r) { ok = r; }, on_error);
      else
        self->request(gw, 1s, ready_atom::value, cfg.model, std::string{})
          .receive([&](bool r) { ok = r; }, on_error);
    }
    if (ok && !was)
      logging::info(log(cfg.model), "queue '{}': reading stream '{}' as consumer '{}' of group "
                                    "'{}' (redis {}:{})", cfg.name, cfg.stream, cfg.consumer,
                    cfg.group, cfg.redis_host, cfg.redis_port);
    if (!ok && was)
      logging::warn(log(cfg.model), "queue '{}': {} not ready: reading of stream '{}' stops until "
                                    "it is (new entries are left to the group's other consumers)",
                    cfg.name, cfg.model.empty() ? "the node is" : "model '" + cfg.model + "' is",
                    cfg.stream);
    if (!ok)
      pause(200ms);
    return ok;
  }

  /// Readiness again every second (`is_ready` and `next_check` carry it between calls): a node
  /// whose model went down (its supervisors gave up, unloaded) stops taking entries it could
  /// only fail, and leaves them to healthy nodes.
  bool still_ready(bool& is_ready, clock_type::time_point& next_check) {
    if (is_ready && clock_type::now() < next_check)
      return true;
    is_ready = ready(is_ready);
    next_check = clock_type::now() + 1s;
    return is_ready;
  }

  /// Adds each entry's delivery count (XPENDING) to entries that may have been delivered before.
  caf::error fetch_deliveries(redis_connection& conn, std::vector<stream_entry>& entries) {
    std::vector<std::vector<std::string>> cmds;
    for (auto& e : entries)
      cmds.push_back({"XPENDING", cfg.stream, cfg.group, e.id, e.id, "1"});
    if (cmds.empty())
      return {};
    auto r = conn.pipeline(cmds);
    if (!r)
      return std::move(r.error());
    for (std::size_t i = 0; i < entries.size(); ++i)
      for (auto& [id, n] : xpending_deliveries((*r)[i]))
        if (id == entries[i].id)
          entries[i].deliveries = n;
    return {};
  }

  /// Where the reader is: first this consumer's own pending entries (a previous run under the
  /// same name stopped before answering them), then new ones; every claim_interval, entries
  /// another consumer left idle for claim_idle_ms.
  struct read_position {
    bool history = true;
    std::string history_cursor = "0";
    std::string claim_cursor = "0-0";
    clock_type::duration claim_interval{};
    clock_type::time_point next_claim = clock_type::now();
  };

  /// Connects the reader; on failure waits out `backoff` (doubled for the next time) and returns
  /// false.
  bool connect_reader(std::unique_ptr<redis_connection>& conn, bool& reported,
                      clock_type::duration& backoff) {
    conn = connect("reader", reported);
    if (!conn) {
      pause(backoff);
      backoff = std::min<clock_type::duration>(backoff * 2,
                                               std::chrono::milliseconds(cfg.reconnect_max_ms));
      return false;
    }
    backoff = reconnect_initial;
    conn->set_timeout(block_time + std::chrono::milliseconds(cfg.connect_timeout_ms) + 1s);
    std::lock_guard<std::mutex> guard(mtx);
    reader_conn = conn.get();
    return true;
  }

  /// Waits until entries may be read (credit: fewer than max_in_flight unanswered); how many,
  /// or 0 when stopping or draining.
  std::size_t wait_for_credit() {
    std::unique_lock<std::mutex> lk(mtx);
    reader_cv.wait(lk, [&] { return stopping || draining || credit > 0; });
    if (stopping || draining)
      return 0;
    return std::min(credit, read_batch);
  }

  /// XAUTOCLAIM's entries: those another consumer left idle; nullopt for a reply of another shape.
  std::optional<std::vector<stream_entry>> claimed_entries(const redis_value& reply,
                                                           read_position& pos) {
    auto claimed = xautoclaim_entries(reply);
    if (!claimed)
      return std::nullopt;
    pos.claim_cursor = claimed->cursor;
    // A whole pass of the pending entries done: the next in claim_interval; else go on.
    pos.next_claim = pos.claim_cursor == "0-0" ? clock_type::now() + pos.claim_interval
                                               : clock_type::now();
    if (!claimed->entries.empty()) {
      qm->entries_claimed.fetch_add(claimed->entries.size(), std::memory_order_relaxed);
      logging::info(log(), "queue '{}': took over {} entries idle for {} ms or more (their "
                           "consumer stopped answering)", cfg.name, claimed->entries.size(),
                    cfg.claim_idle_ms);
    }
    return std::move(claimed->entries);
  }

  /// Reads up to `n` entries from where `pos` is; nullopt when the connection was lost (and
  /// dropped). `maybe_redelivered`: they may have been delivered before (their counts matter).
  std::optional<std::vector<stream_entry>> read_entries(std::unique_ptr<redis_connection>& conn,
                                                        read_position& pos, std::size_t n,
                                                        bool& maybe_redelivered) {
    auto count = std::to_string(n);
    bool claiming = !pos.history && clock_type::now() >= pos.next_claim;
    maybe_redelivered = pos.history || claiming;
    auto reply = pos.history ? conn->command({"XREADGROUP", "GROUP", cfg.group, cfg.consumer,
                                              "COUNT", count, "STREAMS", cfg.stream,
                                              pos.history_cursor})
                 : claiming ? conn->command({"XAUTOCLAIM", cfg.stream, cfg.group, cfg.consumer,
                                             std::to_string(cfg.claim_idle_ms), pos.claim_cursor,
                                             "COUNT", count})
                            : conn->command({"XREADGROUP", "GROUP", cfg.group, cfg.consumer,
                                             "COUNT", count, "BLOCK",
                                             std::to_string(block_time.count()), "STREAMS",
                                             cfg.stream, ">"});
    if (!reply) {
      lost(conn, "reader", reply.error());
      return std::nullopt;
    }
    if (reply->is_error()) { // e.g. NOGROUP: the stream or group was deleted; a reconnection
      lost(conn, "reader",   // makes them again
           make_error(errc::not_ready, "redis refused a read of stream '" + cfg.stream
                                         + "': " + reply->str));
      return std::nullopt;
    }
    auto entries = claiming ? claimed_entries(*reply, pos) : xreadgroup_entries(*reply);
    if (!entries) {
      lost(conn, "reader", make_error(errc::internal, claiming ? "an XAUTOCLAIM reply of unknown shape"
                                                               : "an XREADGROUP reply of unknown shape"));
      return std::nullopt;
    }
    if (pos.history) {
      if (entries->empty())
        pos.history = false;
      else
        pos.history_cursor = entries->back().id;
    }
    return entries;
  }

  void reader_loop() {
    std::unique_ptr<redis_connection> conn;
    bool reported = false, is_ready = false;
    auto backoff = clock_type::duration(reconnect_initial);
    read_position pos;
    pos.claim_interval = std::clamp<clock_type::duration>(
      std::chrono::milliseconds(cfg.claim_idle_ms / 4), 250ms, 30s);
    auto next_ready_check = clock_type::now();
    while (!stopping && !draining) {
      if (!conn) {
        if (!connect_reader(conn, reported, backoff))
          continue;
        if (stopping)
          break;
      }
      if (!still_ready(is_ready, next_ready_check))
        continue;
      auto n = wait_for_credit();
      if (n == 0)
        break;
      bool maybe_redelivered = false;
      auto entries = read_entries(conn, pos, n, maybe_redelivered);
      if (!entries)
        continue;
      if (maybe_redelivered && !entries->empty())
        if (auto err = fetch_deliveries(*conn, *entries)) {
          // Without their counts they count as first deliveries: run rather than refused.
          lost(conn, "reader", err);
        }
      for (auto& e : *entries)
        dispatch(std::move(e));
    }
    if (conn) {
      std::lock_guard<std::mutex> guard(mtx);
      reader_conn = nullptr;
      qm->redis_up.fetch_sub(1, std::memory_order_relaxed);
    }
    reader_done = true;
  }

  void dispatch(stream_entry e) {
    {
      std::lock_guard<std::mutex> guard(mtx);
      --credit;
    }
    held.fetch_add(1);
    qm->entries_read.fetch_add(1, std::memory_order_relaxed);
    qm->in_flight.fetch_add(1, std::memory_order_relaxed);
    asio::post(ioc, [self = shared_from_this(), e = std::move(e)]() mutable {
      self->handle(std::move(e));
    });
  }

  // ---- job thread -----------------------------------------------------------------------------

  void handle(stream_entry e) {
    if (e.deleted) { // pending, but no longer in the stream: nothing to run or answer
      logging::debug(log(), "queue '{}': entry {} was deleted from the stream; acknowledged",
                     cfg.name, e.id);
      return finish(outgoing{e.id, {}, {}, 0, {}});
    }
    auto deliveries = e.deliveries;
    auto h = std::make_shared<held_entry>();
    h->received = clock_type::now();
    h->job = read_job(std::move(e), cfg);
    h->span.begin(h->job.traceparent, {}, h->received);
    h->job.traceparent = h->span.context().header();
    h->mm = infer->stats()->model(h->job.model);
    if (deliveries > cfg.max_deliveries) {
      qm->entries_given_up.fetch_add(1, std::memory_order_relaxed);
      auto why = make_error(errc::inference_failed,
                            "entry " + h->job.entry_id + " of stream '" + cfg.stream
                              + "' was delivered " + std::to_string(deliveries)
                              + " times without an answer (max_deliveries "
                              + std::to_string(cfg.max_deliveries)
                              + "): each consumer that took it stopped before answering, so it "
                                "is not run again");
      if (!cfg.dead_letter_stream.empty())
        h->dead_letter = dead_letter_fields(h->job, deliveries, error_message(why));
      return answer(h, std::move(why));
    }
    if (h->job.problem)
      return answer(h, h->job.problem);
    if (!infer->config()->find_model(h->job.model)) // (before its body is decoded, as it would be)
      return answer(h, make_error(errc::model_not_found, "unknown model '" + h->job.model + "'"));
    auto now_ms = unix_ms_now();
    if (h->job.deadline_ms && *h->job.deadline_ms <= now_ms)
      return answer(h, make_error(errc::deadline_exceeded,
                                  "deadline_ms " + std::to_string(*h->job.deadline_ms) + " passed "
                                    + std::to_string(now_ms - *h->job.deadline_ms)
                                    + " ms before the entry was read"));
    // The body stays where it is: binary tensors are views of it.
    h->body = std::make_shared<const std::string>(std::move(h->job.body));
    auto wait_us = infer->config()->find_model(h->job.model)->default_timeout_us;
    h->give_up = h->received + std::chrono::microseconds(wait_us);
    if (h->job.deadline_ms)
      h->give_up = std::min(h->give_up, h->received + std::chrono::milliseconds(
                                                        *h->job.deadline_ms - now_ms));
    admit(h);
  }

  /// Counts the entry's body in the node's budget for request bodies (which HTTP's share), then
  /// runs it. Where the budget is full it waits (50 ms, doubling to 1 s) until its body fits or
  /// its time is up, so that queue entries never push HTTP's requests out of the budget.
  void admit(const std::shared_ptr<held_entry>& h) {
    auto& stats = *infer->stats();
    auto limit = infer->config()->server.http.max_inflight_body_bytes;
    auto n = h->body->size();
    if (n > limit)
      return answer(h, make_error(errc::payload_too_large,
                                  "the entry's body of " + std::to_string(n) + " bytes exceeds "
                                    "the node's budget for request bodies ("
                                    + std::to_string(limit) + ", http.max_inflight_body_bytes)"));
    if (stats.http_body_bytes.fetch_add(n) + n > limit) {
      stats.http_body_bytes.fetch_sub(n);
      auto now = clock_type::now();
      if (now + h->backoff >= h->give_up || stopping)
        return answer(h, make_error(errc::overloaded,
                                    "the node's budget for request bodies stayed full "
                                    "(http.max_inflight_body_bytes) until the entry's timeout"));
      return after_backoff(h, &impl::admit);
    }
    h->body_bytes = n;
    h->backoff = retry_initial;
    run(h);
  }

  /// Decodes an admitted entry's request and sends it to its model.
  void run(const std::shared_ptr<held_entry>& h) {
    auto& stats = *infer->stats();
    const kserve::memory_budget budget{&stats.http_body_bytes,
                                       infer->config()->server.http.max_inflight_body_bytes,
                                       h->body_bytes};
    auto decoded = kserve::decode_request(*h->body, h->job.header_length, h->body, &budget,
                                          nullptr);
    if (!decoded)
      return answer(h, std::move(decoded.error()));
    auto now_ms = unix_ms_now();
    h->options = infer->take_options(*decoded, h->job.model);
    auto& req = decoded->request;
    req.model = h->job.model;
    req.version = h->job.version;
    h->span.stamp(req);
    if (h->job.deadline_ms) { // the request's timeout ends at the deadline at the latest
      auto left_us = (*h->job.deadline_ms - now_ms) * 1000;
      if (req.timeout_us <= 0 || req.timeout_us > left_us)
        req.timeout_us = std::max<int64_t>(left_us, 1);
    }
    h->give_up = h->received + infer->timeout_of(req);
    h->request = std::move(req);
    attempt(h);
  }

  void attempt(const std::shared_ptr<held_entry>& h) {
    infer->submit(h->request, h->options,
                  [self = shared_from_this(), h](caf::expected<infer_response> res) {
                    asio::post(self->ioc, [self, h, res = std::move(res)]() mutable {
                      self->on_result(h, std::move(res));
                    });
                  });
  }

  /// Calls `next` for the entry after its backoff (50 ms, doubling to 1 s with each wait).
  void after_backoff(const std::shared_ptr<held_entry>& h,
                     void (impl::*next)(const std::shared_ptr<held_entry>&)) {
    h->timer.emplace(ioc, h->backoff);
    h->backoff = std::min<clock_type::duration>(h->backoff * 2, retry_max);
    h->timer->async_wait(
      [self = shared_from_this(), h, next](const boost::system::error_code& ec) {
        if (!ec)
          ((*self).*next)(h);
      });
  }

  void on_result(const std::shared_ptr<held_entry>& h, caf::expected<infer_response> res) {
    if (!res && retriable(error_code(res.error())) && !stopping) {
      auto now = clock_type::now();
      if (now + h->backoff < h->give_up) { // not now: again after a pause, within its timeout
        h->request.timeout_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                  h->give_up - now - h->backoff).count();
        return after_backoff(h, &impl::attempt);
      }
    }
    answer(h, std::move(res));
  }

  void answer(const std::shared_ptr<held_entry>& h, caf::expected<infer_response> res) {
    if (h->body_bytes > 0) {
      infer->stats()->http_body_bytes.fetch_sub(h->body_bytes);
      h->body_bytes = 0;
    }
    unsigned status = 200;
    std::string body;
    std::optional<std::size_t> header_length;
    if (res) {
      auto total = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     clock_type::now() - h->received).count();
      auto enc = kserve::encode_response(*res, *h->options, total);
      body = std::move(enc.body);
      header_length = enc.json_length;
    } else {
      status = http_status(res.error());
      auto message = error_message(res.error());
      if (status >= 500)
        logging::warn(log(h->job.model), "queue '{}': entry {}: {} {}", cfg.name,
                      h->job.entry_id, status, message);
      else
        logging::debug(log(h->job.model), "queue '{}': entry {}: {} {}", cfg.name,
                       h->job.entry_id, status, message);
      body = kserve::error_body(message);
    }
    inference::account(h->mm, res ? errc::none : error_code(res.error()), h->received);
    end_span(*h, status, res ? nullptr : &body, res ? &*res : nullptr);
    finish(outgoing{h->job.entry_id, h->job.reply_to,
                    answer_fields(h->job, status, std::move(body), header_length), status,
                    std::move(h->dead_letter)});
  }

  /// Ends the entry's span (messaging semantic conventions: a consumer's "process" span).
  void end_span(held_entry& h, unsigned status, const std::string* error_body,
                const infer_response* res) {
    request_span::outcome how;
    how.failed = status != 200;
    how.status_error = status >= 500;
    if (error_body)
      how.message = *error_body;
    how.response = res;
    auto s = h.span.end(tracing::span_kind::consumer, span_name, how);
    if (!s)
      return;
    s->set("messaging.system", "redis")
      .set("messaging.operation.type", "process")
      .set("messaging.operation.name", "process")
      .set("messaging.destination.name", cfg.stream)
      .set("messaging.consumer.group.name", cfg.group)
      .set("messaging.message.id", h.job.entry_id)
      .set("actorserve.model", h.job.model)
      .set("actorserve.answer_status", static_cast<int64_t>(status));
    tracing::record(std::move(*s));
  }

  void finish(outgoing o) {
    std::lock_guard<std::mutex> guard(mtx);
    out.push_back(std::move(o));
    writer_cv.notify_one();
  }

  // ---- writer ---------------------------------------------------------------------------------

  /// MULTI, an XADD per answer (to its reply stream), one XACK and one XDEL (delete_answered)
  /// of all the batch's entries, EXEC.
  std::vector<std::vector<std::string>> commands_for(const std::vector<outgoing>& batch) const {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(batch.size() + 4);
    cmds.push_back({"MULTI"});
    std::vector<std::string> xack{"XACK", cfg.stream, cfg.group};
    std::vector<std::string> xdel{"XDEL", cfg.stream};
    for (auto& o : batch) {
      if (!o.reply_to.empty()) {
        std::vector<std::string> xadd{"XADD", o.reply_to};
        if (cfg.reply_maxlen > 0)
          xadd.insert(xadd.end(), {"MAXLEN", "~", std::to_string(cfg.reply_maxlen)});
        xadd.push_back("*");
        for (auto& [k, v] : o.fields) {
          xadd.push_back(k);
          xadd.push_back(v);
        }
        cmds.push_back(std::move(xadd));
      }
      if (!o.dead_letter.empty()) { // (the entry and why, kept for an operator to look at)
        std::vector<std::string> xadd{"XADD", cfg.dead_letter_stream, "*"};
        for (auto& [k, v] : o.dead_letter) {
          xadd.push_back(k);
          xadd.push_back(v);
        }
        cmds.push_back(std::move(xadd));
      }
      xack.push_back(o.entry_id);
      xdel.push_back(o.entry_id);
    }
    cmds.push_back(std::move(xack));
    if (cfg.delete_answered)
      cmds.push_back(std::move(xdel));
    cmds.push_back({"EXEC"});
    return cmds;
  }

  /// Logs the answers Redis refused (a reply_to that is not a stream); the entries are
  /// acknowledged all the same, so that they do not run again.
  void report_refused(const std::vector<outgoing>& batch, const redis_value& exec) {
    if (exec.kind != redis_value::array) {
      qm->redis_errors.fetch_add(1, std::memory_order_relaxed);
      logging::error(log(), "queue '{}': redis did not run a write of {} answers ({}): the "
                            "entries stay pending and are delivered again", cfg.name,
                     batch.size(), exec.str);
      return;
    }
    std::size_t i = 0; // EXEC's results: the XADDs first, in the batch's order
    for (auto& o : batch) {
      if (o.reply_to.empty())
        continue;
      if (i < exec.elements.size() && exec.elements[i].is_error()) {
        qm->redis_errors.fetch_add(1, std::memory_order_relaxed);
        logging::error(log(), "queue '{}': the answer to entry {} (status {}) could not be "
                              "added to '{}': {}", cfg.name, o.entry_id, o.status, o.reply_to,
                       exec.elements[i].str);
      }
      ++i;
    }
  }

  void writer_loop() {
    std::unique_ptr<redis_connection> conn;
    bool reported = false;
    auto backoff = clock_type::duration(reconnect_initial);
    for (;;) {
      std::vector<outgoing> batch;
      {
        std::unique_lock<std::mutex> lk(mtx);
        writer_cv.wait(lk, [&] { return stopping || !out.empty(); });
        if (out.empty())
          break;
        while (!out.empty() && batch.size() < write_batch) {
          batch.push_back(std::move(out.front()));
          out.pop_front();
        }
      }
      auto put_back = [&] {
        std::lock_guard<std::mutex> guard(mtx);
        for (auto it = batch.rbegin(); it != batch.rend(); ++it)
          out.push_front(std::move(*it));
      };
      if (!conn) {
        conn = connect("writer", reported);
        if (!conn) {
          put_back();
          if (stopping)
            break;
          pause(backoff);
          backoff = std::min<clock_type::duration>(backoff * 2,
                                                   std::chrono::milliseconds(cfg.reconnect_max_ms));
          continue;
        }
        backoff = reconnect_initial;
        conn->set_timeout(std::chrono::milliseconds(cfg.connect_timeout_ms) + 5s);
      }
      auto replies = conn->pipeline(commands_for(batch));
      if (!replies) { // unknown whether it ran: written again (an answer may then come twice)
        lost(conn, "writer", replies.error());
        put_back();
        if (stopping)
          break;
        continue;
      }
      report_refused(batch, replies->back());
      std::size_t n = batch.size();
      for (auto& o : batch)
        if (!o.reply_to.empty() && o.status < qm->answers.size())
          qm->answers[o.status].fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard<std::mutex> guard(mtx);
        credit += n;
      }
      qm->in_flight.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
      held.fetch_sub(n);
      reader_cv.notify_one();
    }
    if (conn)
      qm->redis_up.fetch_sub(1, std::memory_order_relaxed);
  }
};

redis_ingress::redis_ingress(std::shared_ptr<inference> infer, queue_config cfg)
  : impl_(std::make_shared<impl>(std::move(infer), std::move(cfg))) {
}

redis_ingress::~redis_ingress() {
  stop();
}

caf::expected<std::string> redis_ingress::start() {
  auto& d = *impl_;
  d.work.emplace(d.ioc.get_executor());
  // (Named for top -H and debuggers: 15 characters at most.)
  d.job_thread = std::thread([&d] {
    pthread_setname_np(pthread_self(), "queue.jobs");
    d.ioc.run();
  });
  d.reader_thread = std::thread([&d] {
    pthread_setname_np(pthread_self(), "queue.read");
    d.reader_loop();
  });
  d.writer_thread = std::thread([&d] {
    pthread_setname_np(pthread_self(), "queue.write");
    d.writer_loop();
  });
  return std::string{}; // (it connects on its own; its log says when)
}

void redis_ingress::begin_drain() {
  impl_->draining = true;
  std::lock_guard<std::mutex> guard(impl_->mtx);
  impl_->reader_cv.notify_all();
}

std::size_t redis_ingress::in_flight() const {
  auto& d = *impl_;
  // Draining, a reader still in its last read may yet deliver entries.
  return d.held.load() + (d.draining && d.reader_thread.joinable() && !d.reader_done ? 1 : 0);
}

void redis_ingress::stop() {
  auto& d = *impl_;
  {
    std::lock_guard<std::mutex> guard(d.mtx);
    if (d.stopping.exchange(true))
      return;
    if (d.reader_conn)
      d.reader_conn->interrupt();
    d.reader_cv.notify_all();
    d.writer_cv.notify_all();
    d.stop_cv.notify_all();
  }
  for (auto* t : {&d.reader_thread, &d.writer_thread})
    if (t->joinable())
      t->join();
  d.work.reset();
  d.ioc.stop();
  if (d.job_thread.joinable())
    d.job_thread.join();
  if (auto left = d.held.load())
    logging::info(d.log(), "queue '{}': stopped with {} entries unanswered; they stay pending "
                           "for the group", d.cfg.name, left);
}

} // namespace actorserve
