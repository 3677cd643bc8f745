#include "actors/batch_answers.hpp"

#include <caf/make_message.hpp>

#include "runtime/host.hpp"
#include "runtime/metrics.hpp"

namespace actorserve {

batch_answers::batch_answers(std::size_t requests)
  : size_(requests), claimed_(new std::atomic<bool>[requests]) {
  for (std::size_t i = 0; i < requests; ++i)
    claimed_[i].store(false, std::memory_order_relaxed);
}

std::size_t batch_answers::open() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < size_; ++i)
    n += claimed(i) ? 0 : 1;
  return n;
}

infer_response batch_answers::response(request_id id, std::string client_id, int64_t queue_ns,
                                       std::vector<tensor> outputs, int64_t compute_ns) const {
  infer_response res;
  res.id = id;
  res.model = model;
  res.version = version;
  res.client_id = std::move(client_id);
  res.outputs = std::move(outputs);
  res.batch_rows = rows;
  res.batch_requests = static_cast<uint32_t>(size_);
  res.queue_ns = queue_ns;
  res.compute_ns = compute_ns;
  res.worker = worker;
  return res;
}

void batch_answers::answer_all(batch_outputs& out) {
  if (model_stats)
    record_batch(*model_stats, rows, size_, out);
  if (worker_stats)
    record_worker_batch(*worker_stats, out);
  out.answered_by_worker = true;
  for (std::size_t i = 0; i < size_ && i < out.per_request.size(); ++i) {
    if (!claim(i)) // (answered by the batcher already: its deadline passed)
      continue;
    auto& r = replies[i];
    auto res = response(r.id, std::move(r.client_id), r.queue_ns, std::move(out.per_request[i]),
                        out.compute_ns);
    // What the batcher's response promise would send, from any thread (no execution unit).
    r.to->enqueue(from, r.mid.response_id(), caf::make_message(std::move(res)), nullptr);
    r.to = nullptr;
  }
}

void record_batch(model_metrics& mm, uint32_t rows, std::size_t requests,
                  const batch_outputs& out) {
  mm.execution_count.fetch_add(1, std::memory_order_relaxed);
  mm.inference_count.fetch_add(rows, std::memory_order_relaxed);
  mm.batch_rows.observe(rows);
  mm.compute_seconds.observe(static_cast<double>(out.compute_ns) * 1e-9);
  for (std::size_t i = 0; i < requests; ++i) { // Triton counts compute per request
    mm.compute_input.add(out.input_ns);
    mm.compute_infer.add(out.infer_ns);
    mm.compute_output.add(out.output_ns);
  }
  if (rows < mm.by_batch_size.size()) {
    auto& s = mm.by_batch_size[rows];
    s.compute_input.add(out.input_ns);
    s.compute_infer.add(out.infer_ns);
    s.compute_output.add(out.output_ns);
  }
  mm.last_inference_ms.store(static_cast<uint64_t>(unix_ms_now()), std::memory_order_relaxed);
}

void record_worker_batch(worker_metrics& wm, const batch_outputs& out) {
  wm.batches.fetch_add(1, std::memory_order_relaxed);
  wm.compute_seconds.observe(static_cast<double>(out.compute_ns) * 1e-9);
}

} // namespace actorserve
