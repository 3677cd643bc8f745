// actors/batch_answers.hpp — who answers each request of a batch in flight: its batcher, or the
// worker that ran it. A worker in the batcher's own process answers the requests of a batch that
// ran straight from its own thread, so an answer goes worker → front, not worker → batcher →
// front (one thread hand-off less per request; the batcher still gets batch_done for its
// bookkeeping). The batcher answers the rest: a request whose deadline passes while its batch
// runs, every request of a failed batch (retries), and every request where its worker is in
// another process or node (the claims then stay with the batcher: batch_job never carries them
// across) or the batch is traced. Each request is answered exactly once: whichever of the two
// claims it first answers it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/message_id.hpp>
#include <caf/actor_control_block.hpp>

#include "runtime/messages.hpp"

namespace actorserve {

struct model_metrics;
struct worker_metrics;

class batch_answers {
public:
  /// Where request i's answer goes (its response promise's receiver and request id), and what
  /// of it the response repeats.
  struct reply {
    caf::strong_actor_ptr to;
    caf::message_id mid;
    request_id id = 0;
    std::string client_id;
    int64_t queue_ns = 0;
  };

  explicit batch_answers(std::size_t requests);

  /// True once per request: to the first to claim it, who then answers it.
  bool claim(std::size_t i) { return !claimed_[i].exchange(true, std::memory_order_acq_rel); }
  bool claimed(std::size_t i) const { return claimed_[i].load(std::memory_order_acquire); }
  std::size_t open() const; // requests not claimed yet

  /// A request's answer with its outputs, the batch's facts filled in (the one place either side
  /// makes one).
  infer_response response(request_id id, std::string client_id, int64_t queue_ns,
                          std::vector<tensor> outputs, int64_t compute_ns) const;

  /// Whether the worker answers: the batcher filled `replies` (one per request).
  bool for_worker() const { return replies.size() == size_; }

  /// The worker's side: counts the batch in the model's and the worker's metrics (before any
  /// answer, as the batcher does: a client that has its answer sees it counted), then answers
  /// each request it claims with its outputs, which leave `out`. Marks `out.answered_by_worker`.
  void answer_all(batch_outputs& out);

  std::vector<reply> replies;
  caf::strong_actor_ptr from; // the batcher: the sender of each answer, as with its promise
  std::string model, version, worker; // (these and rows: for every batch, whoever answers)
  uint32_t rows = 0;
  model_metrics* model_stats = nullptr;   // null without metrics
  worker_metrics* worker_stats = nullptr;

private:
  std::size_t size_;
  std::unique_ptr<std::atomic<bool>[]> claimed_;
};

/// A finished batch in its model's metrics: executions, inferences, rows, compute times.
void record_batch(model_metrics& mm, uint32_t rows, std::size_t requests,
                  const batch_outputs& out);
/// ... and in its worker's.
void record_worker_batch(worker_metrics& wm, const batch_outputs& out);

} // namespace actorserve
