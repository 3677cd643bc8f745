// actors/cluster.hpp — several actorserve nodes as one service, over CAF's own networking
// (io::middleman; libcaf_openssl for TLS). A front node (server.cluster.role "front" or "both"
// with a listen port) publishes a cluster broker; a worker node (role "worker") runs, for every
// front it lists in `seeds` and every worker its models declare, an agent that joins the front
// (connect, register its worker by name, get the model's batcher), runs the worker for that
// batcher, and rejoins with backoff when the front or the connection goes away. Batchers treat
// remote workers like local ones: they monitor them (a killed node or a connection silent for
// timeout_ms shows as a down message) and retry their batches elsewhere. Leaving (SIGTERM) drains:
// the worker takes no new batches, finishes its own, then the batcher removes it.
// Remote nodes can send the typed messages of these interfaces and nothing else: no actor type is
// registered for remote spawning.
#pragma once

#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include "actors/worker.hpp"
#include "runtime/config.hpp"

namespace actorserve {

/// Sets up what the actor system needs for the cluster before it exists: the middleman's
/// heartbeats and timeout and, with TLS configured, the OpenSSL manager and its files.
void configure_cluster(caf::actor_system_config& cfg, const cluster_config& cluster);

/// Whether this build has TLS (libcaf_openssl).
bool tls_available();

/// Publishes `broker` on the listen address and port (TLS when configured); the bound port.
caf::expected<uint16_t> publish_front(caf::actor_system& sys, const cluster_config& cluster,
                                      const caf::actor& broker);

/// A worker node's supervision tree: root (server.supervision) -> one agent per seed, model,
/// device and instance. Stop it with an exit message; each agent drains before it stops.
caf::actor spawn_worker_node(caf::actor_system& sys, std::shared_ptr<const deployment_config> cfg);

/// The joining side, shared by worker nodes and isolated worker processes: connects to the node
/// at `seed` ("host:port"), registers `spec`'s worker with `token`, gets its model's batcher and
/// runs the worker for it. With `rejoin`, it joins again (with backoff) whenever the node, the
/// connection or the worker goes away, and drains the worker when it is stopped; without, it
/// exits with an error on the first of these (an isolated worker's process then ends, and its
/// node restarts it).
caf::actor spawn_join_agent(caf::actor_system& sys, const worker_spec& spec,
                            const cluster_config& cluster, const std::string& seed,
                            const std::string& token, bool rejoin);

/// The node name to use: the configured one, or host name and process id.
std::string node_name(const cluster_config& cluster);

} // namespace actorserve
