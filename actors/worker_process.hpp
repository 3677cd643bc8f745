// actors/worker_process.hpp — process isolation (models[].isolation: "process"). Each isolated
// worker runs in a child process of the node (`actorserve worker ...`), which connects back over
// CAF networking on loopback to the node's worker broker, gets its model's batcher and serves it
// like any worker. In the node's supervision tree the worker is represented by a worker-process
// actor that owns the OS process: it reports the process's exit (a segfault, abort, SIGKILL or a
// sticky CUDA error that ends it) as its own failure, so the workers supervisor restarts it (a
// new process, which reloads and re-warms the model before the batcher routes to it), and it kills
// the process when it is stopped or abandoned as hung, which reclaims the memory (and the CUDA
// context) that a blocked in-process call would keep. Worker nodes of a cluster join a front
// through the same broker and the same joining agent (actors/cluster.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/handle_cell.hpp"
#include "actors/interfaces.hpp"
#include "actors/worker.hpp"
#include "runtime/shared_segment.hpp"

namespace actorserve {

/// The shared memory of each running worker process, by worker name (see shared_segment.hpp).
class segment_registry {
public:
  void put(const std::string& worker, std::shared_ptr<shared_segment> segment);
  void erase(const std::string& worker, const shared_segment* segment);
  std::shared_ptr<shared_segment> find(const std::string& worker) const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, std::shared_ptr<shared_segment>> segments_;
};

/// How a worker process finds its node.
struct process_endpoint {
  std::string executable;  // the actorserve binary
  std::string config_path; // the deployment file, which the worker loads too
  uint16_t port = 0;       // the worker broker, published on 127.0.0.1
  std::string token;       // shared secret a worker presents (passed in its environment)
  std::shared_ptr<segment_registry> segments = std::make_shared<segment_registry>();
};

using batcher_cells = std::map<std::string, std::shared_ptr<handle_cell<batcher_actor>>>;

/// The broker worker processes (and worker nodes of a cluster) register with:
/// `(register_atom, worker name, token)` answers the current batcher of the worker's model as a
/// caf::actor. An empty `token` accepts any (the cluster's, whose peers TLS authenticates).
/// A worker with shared memory in `segments` gets a relay instead: a local actor that stands
/// for the worker to the batcher and for the batcher to the worker, and moves each batch's
/// input bytes into the shared memory on the way.
caf::actor spawn_worker_broker(caf::actor_system& sys, std::string token,
                               std::shared_ptr<const batcher_cells> batchers,
                               std::shared_ptr<const segment_registry> segments = nullptr);

/// Starts the worker's process and returns the actor that stands for it (see above).
caf::actor spawn_worker_process(caf::actor_system& sys, const worker_spec& spec,
                                const process_endpoint& endpoint);

/// The child's side (`actorserve worker ...`): connects to the broker at `port`, runs the worker
/// until it ends or the node goes away. Returns the process's exit status.
/// `shm_fd`/`shm_bytes`: the inherited shared memory segment (-1: none).
int run_worker_process(const std::string& config_path, const std::string& model,
                       const std::string& device, uint32_t instance, uint16_t port,
                       long parent_pid, int shm_fd = -1, std::size_t shm_bytes = 0);

} // namespace actorserve
