#include "actors/item_stage.hpp"

#include <algorithm>
#include <unordered_map>

#include <caf/all.hpp>

#include "runtime/error.hpp"
#include "runtime/tracing.hpp"

namespace actorserve {
namespace {

// Beyond the request's deadline (a worker refuses items past it): only matters if one is lost.
constexpr auto item_grace = std::chrono::seconds(2);

// (An item is its request's stage_input narrowed to one item, and its index in the request.)
using item_worker_actor = caf::typed_actor<
  caf::replies_to<stage_items_atom, stage_input, uint32_t>::with<stage_output>>;

/// One item's outputs as single-item tensors, or its error.
stage_output run_item(const item_stage_spec& spec, const stage_input& in, uint32_t index) {
  stage_output out;
  auto now = steady_now_ns();
  if (!in.wanted(now)) {
    bool gone = in.cancelled && in.cancelled->load();
    out.errors.push_back({index, gone ? errc::cancelled : errc::deadline_exceeded,
                          gone ? "the client left" : "the request's deadline passed"});
    return out;
  }
  caf::expected<item_parts> parts = item_parts{};
  try {
    parts = spec.work(in);
  } catch (const std::exception& e) { // (a stage's bug is that item's error, not the node's)
    parts = make_error(errc::internal, e.what());
  }
  if (!parts) {
    auto code = error_code(parts.error());
    out.errors.push_back({index, code == errc::none ? errc::internal : code,
                          error_message(parts.error())});
    return out;
  }
  if (parts->size() != spec.outputs.size()) {
    out.errors.push_back({index, errc::internal, "the stage made " + std::to_string(parts->size())
                                                   + " outputs, it declares "
                                                   + std::to_string(spec.outputs.size())});
    return out;
  }
  for (std::size_t k = 0; k < parts->size(); ++k) {
    auto& o = spec.outputs[k];
    auto& bytes = (*parts)[k];
    tensor t;
    t.name = o.name;
    t.dtype = o.dtype;
    t.shape = o.dims;
    t.shape.insert(t.shape.begin(), 1);
    if (o.dtype == datatype::BYTES) {
      std::vector<uint8_t> element;
      append_bytes_element(element, {reinterpret_cast<const char*>(bytes.data()), bytes.size()});
      t.data = std::move(element);
    } else if (bytes.size() != item_bytes(o)) {
      out.errors.push_back({index, errc::internal, "the stage made " + std::to_string(bytes.size())
                                                     + " bytes of output '" + o.name + "', "
                                                     + std::to_string(item_bytes(o)) + " due"});
      return out;
    } else {
      t.data = std::move(bytes);
    }
    out.tensors.push_back(std::move(t));
  }
  return out;
}

/// A sampled request's item: its span, a child of the stage step's.
void record_item(const item_stage_spec& spec, const stage_input& in, uint32_t index,
                 std::chrono::steady_clock::time_point started, const stage_output& out) {
  auto s = tracing::make_child(in.trace_id, in.span_id, "item " + spec.name, // (model/step/stage)
                               started, std::chrono::steady_clock::now());
  s.set("actorserve.stage", spec.name).set("actorserve.item", static_cast<int64_t>(index));
  if (!out.errors.empty()) {
    s.error = true;
    s.status_message = out.errors.front().message;
  }
  tracing::record(std::move(s));
}

item_worker_actor::behavior_type item_worker_fn(std::shared_ptr<const item_stage_spec> spec) {
  return {
    [spec](stage_items_atom, const stage_input& in, uint32_t index) {
      auto started = steady_now_ns();
      auto t0 = std::chrono::steady_clock::now();
      auto out = run_item(*spec, in, index);
      if (spec->metrics)
        spec->metrics->observe(steady_now_ns() - started, 0,
                               out.errors.empty() ? errc::none : out.errors.front().code);
      if (in.sampled)
        record_item(*spec, in, index, t0, out);
      return out;
    },
  };
}

/// A request being worked on: each item's result as it comes back.
struct pending_items {
  caf::typed_response_promise<stage_output> promise;
  std::vector<stage_output> items;
  std::size_t remaining = 0;
};

struct front_state {
  std::shared_ptr<const item_stage_spec> spec;
  std::vector<item_worker_actor> workers;
  std::vector<uint32_t> outstanding; // items sent to each worker, not yet answered
  std::unordered_map<uint64_t, pending_items> pending;
  uint64_t next_id = 0;
  static inline const char* name = "item_stage";
};

using front_ptr = stage_actor::stateful_pointer<front_state>;

/// The items' outputs joined in item order (the items all succeeded).
stage_output join(const item_stage_spec& spec, std::vector<stage_output>& items) {
  stage_output out;
  for (std::size_t k = 0; k < spec.outputs.size(); ++k) {
    std::vector<const byte_buffer*> parts;
    for (auto& it : items)
      parts.push_back(&it.tensors[k].data);
    out.tensors.push_back(join_items(spec.outputs[k], parts));
  }
  return out;
}

void item_done(front_ptr self, uint64_t id, uint32_t index, std::size_t worker,
               stage_output& res) {
  auto& st = self->state;
  --st.outstanding[worker];
  auto it = st.pending.find(id);
  if (it == st.pending.end())
    return;
  auto& p = it->second;
  p.items[index] = std::move(res);
  if (--p.remaining > 0)
    return;
  stage_output out;
  for (auto& item : p.items)
    out.errors.insert(out.errors.end(), item.errors.begin(), item.errors.end());
  if (out.errors.empty())
    out = join(*st.spec, p.items);
  p.promise.deliver(std::move(out));
  st.pending.erase(it);
}

/// The request's items, each a stage_input of one item; empty when a tensor's items are not
/// there (a first dimension that differs, bytes that do not match the shape).
std::vector<stage_input> split_request(const stage_input& in) {
  auto n = static_cast<std::size_t>(std::max<int64_t>(0, item_count(in)));
  std::vector<stage_input> items(n);
  for (auto& item : items) {
    item.parameters = in.parameters;
    item.deadline_ns = in.deadline_ns;
    item.trace_id = in.trace_id;
    item.span_id = in.span_id;
    item.sampled = in.sampled;
    item.cancelled = in.cancelled;
  }
  for (auto& t : in.tensors) {
    auto parts = split_items(t);
    if (parts.size() != n)
      return {};
    for (std::size_t i = 0; i < n; ++i)
      items[i].tensors.push_back(std::move(parts[i]));
  }
  return items;
}

caf::result<stage_output> start_items(front_ptr self, stage_input& in) {
  auto& st = self->state;
  auto n = item_count(in);
  if (n <= 0) {
    std::vector<stage_output> none;
    return join(*st.spec, none);
  }
  auto items = split_request(in);
  if (items.empty())
    return make_error(errc::invalid_input, "stage '" + st.spec->name + "': its inputs do not "
                                           "hold " + std::to_string(n) + " items each");
  auto id = st.next_id++;
  auto& p = st.pending[id];
  p.promise = self->make_response_promise<stage_output>();
  p.items.resize(static_cast<std::size_t>(n));
  p.remaining = static_cast<std::size_t>(n);
  auto promise = p.promise;
  auto left = std::chrono::nanoseconds(std::max<int64_t>(0, in.deadline_ns - steady_now_ns()));
  for (int64_t i = 0; i < n; ++i) {
    auto w = static_cast<std::size_t>(
      std::min_element(st.outstanding.begin(), st.outstanding.end()) - st.outstanding.begin());
    ++st.outstanding[w];
    auto index = static_cast<uint32_t>(i);
    self->request(st.workers[w], left + item_grace, stage_items_atom::value,
                  std::move(items[static_cast<std::size_t>(i)]), index)
      .then([self, id, index, w](stage_output& res) { item_done(self, id, index, w, res); },
            [self, id, index, w](caf::error& err) {
              stage_output res;
              auto code = error_code(err);
              res.errors.push_back({index, code == errc::none ? errc::internal : code,
                                    error_message(err)});
              item_done(self, id, index, w, res);
            });
  }
  return promise;
}

stage_actor::behavior_type front_fn(front_ptr self, std::shared_ptr<const item_stage_spec> spec) {
  auto& st = self->state;
  st.spec = spec;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, spec->threads); ++i) {
    auto w = self->system().spawn<caf::detached>(item_worker_fn, spec);
    self->link_to(w);
    st.workers.push_back(w);
    st.outstanding.push_back(0);
  }
  return {
    [self](stage_atom, stage_input& in) { return start_items(self, in); },
  };
}

} // namespace

std::size_t item_bytes(const tensor_spec& spec) {
  if (spec.dtype == datatype::BYTES)
    return 0;
  std::size_t n = element_size(spec.dtype);
  for (auto d : spec.dims)
    n *= static_cast<std::size_t>(std::max<int64_t>(d, 0));
  return n;
}

stage_actor spawn_item_stage(caf::actor_system& sys, item_stage_spec spec) {
  return sys.spawn(front_fn, std::make_shared<const item_stage_spec>(std::move(spec)));
}

} // namespace actorserve
