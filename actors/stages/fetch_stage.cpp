// The "fetch" stage: images BYTES (each a URL) -> images BYTES (each the body fetched from it), on
// an http_fetcher (libcurl's multi interface on a thread of the stage's own; see
// runtime/http_fetcher.hpp for why libcurl and not Beast's client). With the request parameter
// images_are = "bytes" the elements already are the images and pass through unfetched. The first
// item that fails fails the request at once and stops its other downloads.
#include <unordered_map>

#include <caf/all.hpp>

#include "runtime/error.hpp"
#include "runtime/http_fetcher.hpp"
#include "runtime/tracing.hpp"
#include "runtime/stage.hpp"
#include "runtime/stage_metrics.hpp"

namespace actorserve {
namespace {

// The fetcher's answer for one item, sent back to the stage from the fetcher's thread.
using fetch_actor = caf::typed_actor<
  caf::replies_to<stage_atom, stage_input>::with<stage_output>,
  caf::reacts_to<stage_items_atom, uint64_t, uint32_t, stage_output>>;

struct pending_fetch {
  caf::typed_response_promise<stage_output> promise;
  std::vector<byte_buffer> bodies; // each a BYTES element
  std::size_t remaining = 0;
  std::shared_ptr<std::atomic<bool>> abandoned = std::make_shared<std::atomic<bool>>(false);
};

struct fetch_state {
  std::unique_ptr<http_fetcher> fetcher;
  std::unordered_map<uint64_t, pending_fetch> pending;
  uint64_t next_id = 1;
  stage_metrics* metrics = nullptr;
  static inline const char* name = "fetch_stage";
};

using fetch_ptr = fetch_actor::stateful_pointer<fetch_state>;

fetch_settings read_settings(stage_parameters& p) {
  fetch_settings s;
  s.allow = p.strings("allow");
  s.max_connections = static_cast<uint32_t>(p.integer("max_connections", 64, 1, 4096));
  s.max_per_host = static_cast<uint32_t>(p.integer("max_per_host", 16, 1, 4096));
  s.connect_timeout_ms = static_cast<uint32_t>(p.integer("connect_timeout_ms", 2000, 1, 600'000));
  s.timeout_ms = static_cast<uint32_t>(p.integer("timeout_ms", 10'000, 1, 3'600'000));
  s.max_bytes = static_cast<uint64_t>(p.integer("max_bytes", 20 << 20, 1, int64_t{1} << 32));
  s.max_redirects = static_cast<uint32_t>(p.integer("max_redirects", 3, 0, 20));
  s.retries = static_cast<uint32_t>(p.integer("retries", 2, 0, 10));
  s.retry_backoff_ms = static_cast<uint32_t>(p.integer("retry_backoff_ms", 50, 0, 60'000));
  std::vector<std::string> wrong;
  fetch_allow_list check(s.allow, wrong);
  for (auto& w : wrong)
    p.fail("allow", w);
  return s;
}

tensor_spec images_spec() {
  tensor_spec s;
  s.name = "images";
  s.dtype = datatype::BYTES;
  return s;
}

stage_signature describe_fetch(stage_parameters& p) {
  read_settings(p);
  return {{images_spec()}, {images_spec()}};
}

/// All items fetched: one BYTES tensor of their bodies, in order.
void deliver_all(pending_fetch& p) {
  std::vector<const byte_buffer*> parts;
  for (auto& b : p.bodies)
    parts.push_back(&b);
  stage_output out;
  out.tensors.push_back(join_items(images_spec(), parts));
  p.promise.deliver(std::move(out));
}

void item_fetched(fetch_ptr self, uint64_t request, uint32_t index, stage_output& res) {
  auto& st = self->state;
  auto it = st.pending.find(request);
  if (it == st.pending.end()) // (failed already: a late or cancelled download)
    return;
  auto& p = it->second;
  if (!res.errors.empty()) {
    p.abandoned->store(true); // (its other downloads stop)
    p.promise.deliver(std::move(res));
    st.pending.erase(it);
    return;
  }
  p.bodies[index] = std::move(res.tensors.front().data);
  if (--p.remaining == 0) {
    deliver_all(p);
    st.pending.erase(it);
  }
}

caf::result<stage_output> start_fetches(fetch_ptr self, stage_input& in) {
  auto& st = self->state;
  auto mode = in.parameters.count("images_are") ? in.parameters.at("images_are") : "urls";
  if (mode == "bytes") { // (the client sent the images themselves)
    stage_output out;
    out.tensors.push_back(std::move(in.tensors.front()));
    out.tensors.back().name = "images";
    return out;
  }
  if (mode != "urls")
    return make_error(errc::invalid_input, "request parameter 'images_are' must be \"urls\" or "
                                           "\"bytes\", got \"" + mode + "\"");
  auto n = item_count(in);
  auto urls = bytes_elements(in.tensors.front().view(), n);
  if (!urls)
    return make_error(errc::invalid_input, "stage 'fetch': its input is not " + std::to_string(n)
                                           + " BYTES elements");
  auto id = st.next_id++;
  auto& p = st.pending[id];
  p.promise = self->make_response_promise<stage_output>();
  p.bodies.resize(urls->size());
  p.remaining = urls->size();
  auto promise = p.promise;
  if (urls->empty()) {
    deliver_all(p);
    st.pending.erase(id);
    return promise;
  }
  st.metrics->in_flight.fetch_add(static_cast<int64_t>(urls->size()), std::memory_order_relaxed);
  for (std::size_t i = 0; i < urls->size(); ++i) {
    fetch_trace trace; // (with tracing on, origins get a traceparent, and sampled ones a span)
    if (tracing::on() && !in.trace_id.empty())
      trace = {in.trace_id, in.span_id, tracing::new_span_id(), in.sampled};
    st.fetcher->fetch((id << 32) | i, std::string((*urls)[i]), in.deadline_ns, in.cancelled,
                      p.abandoned, std::move(trace));
  }
  return promise;
}

/// A sampled download's span (HTTP client semantic conventions), a child of its step's.
void record_download(const fetch_result& r) {
  auto end = std::chrono::steady_clock::now();
  auto s = tracing::make_child(r.trace.trace_id, r.trace.parent_span_id, "GET",
                               end - std::chrono::nanoseconds(r.duration_ns), end, r.trace.span_id);
  s.kind = tracing::span_kind::client;
  s.set("http.request.method", "GET").set("url.full", r.url);
  if (r.http_status > 0)
    s.set("http.response.status_code", static_cast<int64_t>(r.http_status));
  s.set("actorserve.fetch.attempts", static_cast<int64_t>(r.attempts))
    .set("actorserve.item", static_cast<int64_t>(r.id & 0xffffffffu));
  if (r.code != errc::none) {
    s.error = true;
    s.status_message = r.message;
    s.set("error.type", std::string(to_string(r.code)));
  }
  tracing::record(std::move(s));
}

/// What the fetcher's thread sends back for one download (counted in the stage's metrics).
stage_output item_result(fetch_result& r, stage_metrics* m) {
  if (r.trace.sampled)
    record_download(r);
  stage_output out;
  if (m) {
    m->observe(r.duration_ns, r.code == errc::none ? r.body.size() - 4 : 0, r.code);
    m->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  if (r.code != errc::none) {
    out.errors.push_back({static_cast<uint32_t>(r.id & 0xffffffffu), r.code, r.message});
    return out;
  }
  tensor t;
  t.dtype = datatype::BYTES;
  t.shape = {1};
  t.data = std::move(r.body);
  out.tensors.push_back(std::move(t));
  return out;
}

fetch_actor::behavior_type fetch_fn(fetch_ptr self, fetch_settings settings,
                                    stage_metrics* metrics) {
  auto& st = self->state;
  st.metrics = metrics;
  caf::weak_actor_ptr weak = self->ctrl();
  st.fetcher = std::make_unique<http_fetcher>(std::move(settings), [weak, metrics](fetch_result r) {
    auto request = r.id >> 32;
    auto index = static_cast<uint32_t>(r.id & 0xffffffffu);
    auto out = item_result(r, metrics);
    if (auto strong = weak.lock())
      caf::anon_send(caf::actor_cast<fetch_actor>(strong), stage_items_atom::value, request,
                     index, std::move(out));
  });
  return {
    [self](stage_atom, stage_input& in) { return start_fetches(self, in); },
    [self](stage_items_atom, uint64_t request, uint32_t index, stage_output& res) {
      item_fetched(self, request, index, res);
    },
  };
}

stage_actor spawn_fetch(caf::actor_system& sys, stage_context& ctx) {
  auto settings = read_settings(ctx.parameters);
  // (Made here, so that a wrong setting fails the spawn, not the actor.)
  auto* metrics = &stage_metrics::for_stage(ctx.name, "fetch");
  return caf::actor_cast<stage_actor>(sys.spawn(fetch_fn, std::move(settings), metrics));
}

stage_registrar fetch_registrar{"fetch", {describe_fetch, spawn_fetch}};

} // namespace
} // namespace actorserve
