#include "actors/pipeline.hpp"

#include <map>
#include <set>

#include <caf/all.hpp>

#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/tracing.hpp"

namespace actorserve {
namespace {

// Beyond a step's own deadline (its batcher answers at the deadline itself): only matters if an
// actor is lost on the way.
constexpr auto step_grace = std::chrono::seconds(2);

struct pipeline_state {
  std::shared_ptr<const deployment_config> cfg;
  const model_config* pipeline = nullptr;
  gateway_actor gateway;
  std::vector<stage_actor> stages; // by step (none for a model step)
  caf::typed_response_promise<infer_response> promise;
  infer_request request;                 // the pipeline request (its inputs moved to `tensors`)
  std::map<std::string, tensor> tensors; // pipeline tensors made so far
  std::vector<bool> started; // (steps the requested outputs do not need count as started)
  std::size_t finished = 0, needed = 0;
  int64_t queue_ns = 0, compute_ns = 0;
  bool answered = false;
  // A sampled request's spans: the pipeline's (a child of the request's), and each step's.
  std::string span_id;
  std::chrono::steady_clock::time_point began;
  std::vector<std::string> step_spans;
  std::vector<std::chrono::steady_clock::time_point> step_began;
  static inline const char* name = "pipeline";
};

using pipeline_ptr = pipeline_run_actor::stateful_pointer<pipeline_state>;

int64_t now_ns(pipeline_ptr self) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           self->clock().now().time_since_epoch()).count();
}

/// What a step is called in logs, errors and spans: "step 1 (model 'resnet')".
std::string step_title(const pipeline_step& s, std::size_t j) {
  return "step " + std::to_string(j)
         + (s.is_stage() ? " (stage '" + s.stage : " (model '" + s.model) + "')";
}

/// A sampled request's pipeline span (`step` npos) or step span ends now; `err`: why it failed.
void end_span(pipeline_ptr self, std::size_t step, const caf::error& err) {
  auto& st = self->state;
  if (st.span_id.empty())
    return;
  bool whole = step == std::string::npos;
  if (!whole && st.step_spans[step].empty()) // (not started, or ended already)
    return;
  // (the pipeline's span is a child of the request's; a step's, of the pipeline's)
  auto s = tracing::make_child(st.request.trace_id, whole ? st.request.span_id : st.span_id,
                               whole ? "pipeline " + st.pipeline->name
                                     : step_title(st.pipeline->pipeline[step], step),
                               whole ? st.began : st.step_began[step],
                               std::chrono::steady_clock::now(),
                               whole ? st.span_id : st.step_spans[step]);
  s.set("actorserve.pipeline", st.pipeline->name);
  if (!whole) {
    auto& p = st.pipeline->pipeline[step];
    s.set("actorserve.step", static_cast<int64_t>(step))
      .set(p.is_stage() ? "actorserve.stage" : "actorserve.model",
           p.is_stage() ? p.stage : p.model);
  }
  if (err)
    s.set("actorserve.error", error_message(err));
  tracing::record(std::move(s));
  if (!whole)
    st.step_spans[step].clear();
}

void fail(pipeline_ptr self, std::size_t step, const caf::error& err) {
  auto& st = self->state;
  if (st.answered)
    return;
  st.answered = true;
  auto code = error_code(err);
  end_span(self, step, err);
  end_span(self, std::string::npos, err);
  st.promise.deliver(make_error(code == errc::none ? errc::internal : code,
                                "pipeline '" + st.pipeline->name + "', "
                                  + step_title(st.pipeline->pipeline[step], step) + ": "
                                  + error_message(err)));
  self->quit();
}

void finish(pipeline_ptr self) {
  auto& st = self->state;
  st.answered = true;
  end_span(self, std::string::npos, {});
  infer_response res;
  res.id = st.request.id;
  res.model = st.pipeline->name;
  res.version = st.pipeline->version;
  res.client_id = std::move(st.request.client_id);
  res.queue_ns = st.queue_ns;
  res.compute_ns = st.compute_ns;
  res.worker = "pipeline";
  for (auto& name : st.request.outputs) {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end()) { // (the gateway checked the names; config validation the steps)
      st.promise.deliver(make_error(errc::internal, "pipeline '" + st.pipeline->name
                                                      + "' made no output '" + name + "'"));
      return self->quit();
    }
    res.outputs.push_back(it->second);
  }
  st.promise.deliver(std::move(res));
  self->quit();
}

void launch_ready(pipeline_ptr self);

/// A step's outputs become pipeline tensors; the next steps start.
void take_outputs(pipeline_ptr self, std::size_t j, std::vector<tensor>& outputs) {
  auto& st = self->state;
  auto& step = st.pipeline->pipeline[j];
  end_span(self, j, {});
  for (auto& [name, target] : step.outputs) {
    auto it = std::find_if(outputs.begin(), outputs.end(),
                           [&n = name](const tensor& t) { return t.name == n; });
    if (it == outputs.end())
      return fail(self, j, make_error(errc::internal, "its answer has no output '" + name + "'"));
    tensor t = std::move(*it); // (its bytes stay where the step's batch left them)
    t.name = target;
    st.tensors[target] = std::move(t);
  }
  if (++st.finished == st.needed)
    return finish(self);
  launch_ready(self);
}

void step_done(pipeline_ptr self, std::size_t j, infer_response& res) {
  auto& st = self->state;
  if (st.answered)
    return;
  st.queue_ns += res.queue_ns;
  st.compute_ns += res.compute_ns;
  take_outputs(self, j, res.outputs);
}

/// A stage's answer: its outputs, or the request fails with its first failed item.
void stage_done(pipeline_ptr self, std::size_t j, stage_output& res, int64_t started_ns) {
  auto& st = self->state;
  if (st.answered)
    return;
  st.compute_ns += now_ns(self) - started_ns;
  if (!res.errors.empty()) {
    auto& e = *std::min_element(res.errors.begin(), res.errors.end(),
                                [](auto& a, auto& b) { return a.index < b.index; });
    auto more = res.errors.size() > 1
                  ? " (and " + std::to_string(res.errors.size() - 1) + " more item"
                      + (res.errors.size() > 2 ? "s" : "") + ")"
                  : std::string{};
    return fail(self, j, make_error(e.code, "item " + std::to_string(e.index) + ": " + e.message
                                              + more));
  }
  take_outputs(self, j, res.tensors);
}

/// A stage step: the stage actor gets the step's tensors (shared, not copied) and the request's
/// parameters, deadline and cancellation.
void launch_stage(pipeline_ptr self, std::size_t j, int64_t left_ns) {
  auto& st = self->state;
  auto& step = st.pipeline->pipeline[j];
  stage_input in;
  for (auto& [input, source] : step.inputs) {
    tensor t = st.tensors.at(source);
    t.name = input;
    in.tensors.push_back(std::move(t));
  }
  in.parameters = st.request.parameters;
  in.deadline_ns = st.request.deadline_ns;
  in.trace_id = st.request.trace_id;
  in.span_id = st.span_id.empty() ? std::string{} : st.step_spans[j];
  in.sampled = !st.span_id.empty();
  in.cancelled = st.request.cancelled;
  auto started = now_ns(self);
  self->request(st.stages.at(j), std::chrono::nanoseconds(left_ns) + step_grace,
                stage_atom::value, std::move(in))
    .then([self, j, started](stage_output& res) { stage_done(self, j, res, started); },
          [self, j](caf::error& err) { fail(self, j, err); });
}

void launch(pipeline_ptr self, std::size_t j) {
  auto& st = self->state;
  auto& step = st.pipeline->pipeline[j];
  auto left_ns = st.request.deadline_ns - now_ns(self);
  if (left_ns <= 0)
    return fail(self, j, make_error(errc::deadline_exceeded,
                                    "the request's deadline passed before the step could start"));
  if (!st.span_id.empty()) {
    st.step_spans[j] = tracing::new_span_id();
    st.step_began[j] = std::chrono::steady_clock::now();
  }
  if (step.is_stage())
    return launch_stage(self, j, left_ns);
  auto* model = st.cfg->find_model(step.model);
  infer_request r;
  r.model = step.model;
  r.client_id = st.request.client_id;
  r.trace_id = st.request.trace_id;
  r.span_id = st.span_id.empty() ? std::string{} : st.step_spans[j]; // (its spans: the step's)
  r.sampled = !st.span_id.empty();
  r.priority = st.request.priority;
  r.cancelled = st.request.cancelled; // a client that leaves drops its queued steps too
  for (auto& [input, source] : step.inputs) {
    tensor t = st.tensors.at(source); // (shares the bytes)
    t.name = input;
    r.inputs.push_back(std::move(t));
  }
  for (auto& kv : step.outputs)
    r.outputs.push_back(kv.first);
  auto left_us = std::max<int64_t>(1, left_ns / 1000);
  r.timeout_us = model ? std::min<int64_t>(left_us, static_cast<int64_t>(model->max_timeout_us))
                       : left_us;
  auto timeout = std::chrono::microseconds(r.timeout_us) + step_grace;
  self->request(st.gateway, timeout, infer_atom::value, std::move(r))
    .then([self, j](infer_response& res) { step_done(self, j, res); },
          [self, j](caf::error& err) { fail(self, j, err); });
}

/// Starts every step not started yet whose tensors all exist.
void launch_ready(pipeline_ptr self) {
  auto& st = self->state;
  for (std::size_t j = 0; j < st.pipeline->pipeline.size(); ++j) {
    if (st.started[j])
      continue;
    bool ready = true;
    for (auto& kv : st.pipeline->pipeline[j].inputs)
      ready = ready && st.tensors.count(kv.second) > 0;
    if (!ready)
      continue;
    st.started[j] = true;
    launch(self, j);
    if (st.answered) // (it failed at once)
      return;
  }
}

pipeline_run_actor::behavior_type pipeline_fn(pipeline_ptr self,
                                              std::shared_ptr<const deployment_config> cfg,
                                              const model_config* pipeline,
                                              gateway_actor gateway,
                                              std::vector<stage_actor> stages) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.pipeline = pipeline;
  st.gateway = std::move(gateway);
  st.stages = std::move(stages);
  return {
    [self](infer_atom, infer_request& req) -> caf::result<infer_response> {
      auto& st = self->state;
      st.promise = self->make_response_promise<infer_response>();
      for (auto& t : req.inputs) {
        auto name = t.name;
        st.tensors[name] = std::move(t);
      }
      req.inputs.clear();
      st.request = std::move(req);
      if (st.request.sampled && tracing::on()) {
        st.span_id = tracing::new_span_id();
        st.began = std::chrono::steady_clock::now();
        st.step_spans.resize(st.pipeline->pipeline.size());
        st.step_began.resize(st.pipeline->pipeline.size());
      }
      if (st.request.outputs.empty()) // (none asked for: all of them)
        for (auto& o : st.pipeline->outputs)
          st.request.outputs.push_back(o.name);
      // Only the steps the requested outputs need run: walking back from those outputs.
      auto& steps = st.pipeline->pipeline;
      std::set<std::string> wanted(st.request.outputs.begin(), st.request.outputs.end());
      st.started.assign(steps.size(), true);
      for (auto j = steps.size(); j-- > 0;) {
        bool makes = false;
        for (auto& kv : steps[j].outputs)
          makes = makes || wanted.count(kv.second) > 0;
        if (!makes)
          continue;
        st.started[j] = false;
        ++st.needed;
        for (auto& kv : steps[j].inputs)
          wanted.insert(kv.second);
      }
      if (st.needed == 0)
        finish(self); // (answers that no step makes what was asked: config validation prevents it)
      else
        launch_ready(self);
      return st.promise;
    },
  };
}

} // namespace

pipeline_run_actor spawn_pipeline_run(caf::actor_system& sys,
                                      std::shared_ptr<const deployment_config> cfg,
                                      const model_config* pipeline, gateway_actor gateway,
                                      std::vector<stage_actor> stages) {
  return sys.spawn(pipeline_fn, std::move(cfg), pipeline, std::move(gateway), std::move(stages));
}

} // namespace actorserve
