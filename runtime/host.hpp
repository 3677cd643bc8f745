// runtime/host.hpp — what a process knows of where it runs: a name for itself among the nodes
// of a deployment, the wall clock as the outside world reads it, and the steady clock deadlines
// are set on.
#pragma once

#include <cstdint>
#include <string>

namespace actorserve {

/// "host-pid": the host name and this process's id, unique among the nodes talking to each other
/// (a cluster's node names, a queue group's consumers); "node-pid" where the host has no name.
std::string host_and_pid();

/// Milliseconds since the Unix epoch, by the wall clock (for what other systems read: Redis
/// entry ages, Triton's last_inference). Not for measuring durations: use steady_clock.
int64_t unix_ms_now();

/// The steady clock in nanoseconds, as requests' deadlines are set (infer_request::deadline_ns,
/// stage_input::deadline_ns).
int64_t steady_now_ns();

} // namespace actorserve
