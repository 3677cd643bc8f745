// Every message type that actors exchange: plain structs with `inspect`, registered in one CAF
// type-ID block (ADD to it at the end only) so any of them can cross the network. Atoms too.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>

#include "runtime/error.hpp"
#include "runtime/tensor.hpp"

namespace actorserve {

using request_id = uint64_t;

class batch_answers; // actors/batch_answers.hpp

/// One inference request as the gateway admits it. Deadlines are steady-clock nanoseconds.
struct infer_request {
  request_id id = 0;
  std::string model;
  std::string version;                // "" = the model's only version
  std::string client_id;              // the protocol's optional "id", echoed back
  std::vector<tensor> inputs;         // batch dimension first when the model batches
  std::vector<std::string> outputs;   // requested outputs; empty = all
  int64_t timeout_us = -1;            // asked for by the client; -1 = the model's default
  int64_t deadline_ns = 0;            // set by the gateway
  std::string fault;                  // test-only fault switch; honoured only when enabled
  std::string trace_id;               // W3C trace id (32 hex digits) for logs
  std::string span_id;                // the span its stages' spans are children of (16 hex)
  bool sampled = false;               // its stages record spans (runtime/tracing.hpp)
  uint32_t priority = 0;              // 1 = highest; 0 = the model's default level
  // The request's string parameters (KServe v2 "parameters"), which pipeline stages read (e.g.
  // images_are); the front's own ones (timeout, priority, ...) are read into the fields above.
  std::map<std::string, std::string> parameters;
  // Set by the HTTP server when the client closes its connection while the request waits: the
  // batcher then drops it instead of running it. In this process only (not serialized).
  std::shared_ptr<std::atomic<bool>> cancelled;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, infer_request& x) {
  return f(caf::meta::type_name("infer_request"), x.id, x.model, x.version, x.client_id, x.inputs,
           x.outputs, x.timeout_us, x.deadline_ns, x.fault, x.trace_id, x.span_id, x.sampled,
           x.priority, x.parameters);
}

struct infer_response {
  request_id id = 0;
  std::string model;
  std::string version;
  std::string client_id;
  std::vector<tensor> outputs;
  uint32_t batch_rows = 0;  // rows in the batch this request ran in (all requests together)
  uint32_t batch_requests = 0; // requests in that batch
  int64_t queue_ns = 0;     // admitted by the batcher -> dispatched to a worker
  int64_t compute_ns = 0;   // the worker's time for the whole batch
  std::string worker;       // which worker instance ran it
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, infer_response& x) {
  return f(caf::meta::type_name("infer_response"), x.id, x.model, x.version, x.client_id,
           x.outputs, x.batch_rows, x.batch_requests, x.queue_ns, x.compute_ns, x.worker);
}

/// A batch handed from a batcher to a worker: whole requests, concatenated by the worker.
struct batch_job {
  uint64_t batch_id = 0;
  std::vector<infer_request> requests;
  // For an isolated worker with shared memory: where each input's bytes are in it, as (offset,
  // length) pairs, request by request and input by input; those tensors then carry no bytes.
  std::vector<uint64_t> shm_spans;
  // The batch's span when one of its requests is sampled (else empty): the worker's compute span
  // is its child, on whichever node or process the worker runs.
  std::string trace_id;
  std::string span_id;
  // For a worker in the batcher's process: the requests' reply addresses and claims, so that it
  // answers them itself (actors/batch_answers.hpp). Never sent to another process or node
  // (inspect leaves it out): there the worker answers the batcher only.
  std::shared_ptr<batch_answers> answers;
  // Whether the worker stays awake for its next batch after this one (model_config::linger_us):
  // only while the model's other workers on its node are idle. Under load they are not, its node's
  // cores are busy and do not halt, and a lingering worker would only take a core from them.
  bool linger = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_job& x) {
  return f(caf::meta::type_name("batch_job"), x.batch_id, x.requests, x.shm_spans, x.trace_id,
           x.span_id, x.linger);
}

/// A worker's answer to a batch_job: outputs split back per request, in the job's order.
struct batch_outputs {
  uint64_t batch_id = 0;
  std::vector<std::vector<tensor>> per_request;
  int64_t compute_ns = 0; // the whole batch on the worker: input + infer + output
  int64_t input_ns = 0;   // assembling the batch
  int64_t infer_ns = 0;   // the backend on this batch (from the previous batch's end if it queued)
  int64_t output_ns = 0;  // splitting the outputs
  // The worker answered the requests itself and counted the batch in the metrics (a worker in
  // the batcher's process: batch_job::answers); per_request then holds only what it could not
  // answer. Not sent across processes.
  bool answered_by_worker = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_outputs& x) {
  return f(caf::meta::type_name("batch_outputs"), x.batch_id, x.per_request, x.compute_ns,
           x.input_ns, x.infer_ns, x.output_ns);
}

/// A batcher's report of its model's workers, pushed to the gateway on every change.
struct model_status {
  std::string model;
  uint32_t ready_workers = 0;
  uint32_t starting_workers = 0; // spawned but not yet warmed up
  uint64_t batches = 0;
  bool cold_start = false; // none ready, but autoscaling starts one for the first request

  /// Whether the model takes requests: a worker is ready, or one starts for them.
  bool serving() const { return ready_workers > 0 || cold_start; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, model_status& x) {
  return f(caf::meta::type_name("model_status"), x.model, x.ready_workers, x.starting_workers,
           x.batches, x.cold_start);
}

/// A fault to inject into a worker (only where server.fault_injection is enabled): its next
/// `count` batches each fail with `probability` in the way `kind` says (crash, throw, hang, slow).
struct fault_spec {
  std::string worker; // "model/device/instance"; empty = a random ready worker of the model
  std::string kind;
  uint32_t count = 1;
  double probability = 1.0;
};

/// The fault kinds workers understand, and how error messages list them.
inline bool is_fault_kind(const std::string& kind) {
  return kind == "crash" || kind == "throw" || kind == "hang" || kind == "slow";
}
constexpr const char* fault_kinds_text = "\"crash\", \"throw\", \"hang\" or \"slow\"";

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fault_spec& x) {
  return f(caf::meta::type_name("fault_spec"), x.worker, x.kind, x.count, x.probability);
}

/// Why one item of a pipeline stage's batch failed: its index, a code (which sets the client's
/// HTTP or gRPC status) and a message naming the reason.
struct item_error {
  uint32_t index = 0;
  errc code = errc::invalid_input;
  std::string message;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_error& x) {
  return f(caf::meta::type_name("item_error"), x.index, x.code, x.message);
}

/// What a pipeline stage is given (runtime/stage.hpp): one request's tensors for the step, whose
/// items lie along each tensor's first dimension.
struct stage_input {
  std::vector<tensor> tensors;                   // the stage's inputs, in its declared order
  std::map<std::string, std::string> parameters; // the request's string parameters
  int64_t deadline_ns = 0;                       // steady clock; past it nobody wants the answer
  std::string trace_id;
  std::string span_id; // the step's span, which a stage's own spans are children of
  bool sampled = false; // the request's spans are recorded (runtime/tracing.hpp)
  // Set when the client leaves. In this process only (not serialized).
  std::shared_ptr<std::atomic<bool>> cancelled;

  /// Whether the answer is still wanted at steady-clock time `now_ns`.
  bool wanted(int64_t now_ns) const {
    return now_ns < deadline_ns && !(cancelled && cancelled->load(std::memory_order_relaxed));
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_input& x) {
  return f(caf::meta::type_name("stage_input"), x.tensors, x.parameters, x.deadline_ns,
           x.trace_id, x.span_id, x.sampled);
}

/// A pipeline stage's answer: its outputs, items first and in the input's order, or the items
/// that failed (any failed item fails the request, named by the first).
struct stage_output {
  std::vector<tensor> tensors; // the stage's outputs, in its declared order
  std::vector<item_error> errors;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_output& x) {
  return f(caf::meta::type_name("stage_output"), x.tensors, x.errors);
}

} // namespace actorserve

CAF_BEGIN_TYPE_ID_BLOCK(actorserve, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(actorserve, (actorserve::tensor))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::infer_request))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::infer_response))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::batch_job))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::batch_outputs))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::model_status))
  CAF_ADD_TYPE_ID(actorserve, (std::vector<actorserve::tensor>))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::fault_spec))
  CAF_ADD_ATOM(actorserve, actorserve, infer_atom, "infer")
  CAF_ADD_ATOM(actorserve, actorserve, execute_atom, "execute")
  CAF_ADD_ATOM(actorserve, actorserve, worker_ready_atom, "wready")
  CAF_ADD_ATOM(actorserve, actorserve, batch_done_atom, "batchdone")
  CAF_ADD_ATOM(actorserve, actorserve, batch_failed_atom, "batchfail")
  CAF_ADD_ATOM(actorserve, actorserve, tick_atom, "tick")
  CAF_ADD_ATOM(actorserve, actorserve, status_atom, "status")
  CAF_ADD_ATOM(actorserve, actorserve, ready_atom, "ready")
  CAF_ADD_ATOM(actorserve, actorserve, worker_starting_atom, "wstarting")
  CAF_ADD_ATOM(actorserve, actorserve, restart_atom, "restart")
  CAF_ADD_ATOM(actorserve, actorserve, gateway_atom, "gateway")
  CAF_ADD_ATOM(actorserve, actorserve, register_atom, "register")
  CAF_ADD_ATOM(actorserve, actorserve, given_up_atom, "givenup")
  CAF_ADD_ATOM(actorserve, actorserve, worker_hung_atom, "whung")
  CAF_ADD_ATOM(actorserve, actorserve, fault_atom, "fault")
  CAF_ADD_ATOM(actorserve, actorserve, child_timeout_atom, "ctimeout")
  CAF_ADD_ATOM(actorserve, actorserve, drain_atom, "drain")
  CAF_ADD_ATOM(actorserve, actorserve, terminate_child_atom, "termchild")
  CAF_ADD_ATOM(actorserve, actorserve, restart_child_atom, "restchild")
  CAF_ADD_ATOM(actorserve, actorserve, unload_atom, "unload")
  CAF_ADD_ATOM(actorserve, actorserve, reload_atom, "reload")
  CAF_ADD_TYPE_ID(actorserve, (actorserve::item_error))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::stage_input))
  CAF_ADD_TYPE_ID(actorserve, (actorserve::stage_output))
  CAF_ADD_ATOM(actorserve, actorserve, stage_atom, "stage")
  CAF_ADD_ATOM(actorserve, actorserve, stage_items_atom, "stageitems")
  CAF_ADD_ATOM(actorserve, actorserve, scale_atom, "scale")
CAF_END_TYPE_ID_BLOCK(actorserve)
