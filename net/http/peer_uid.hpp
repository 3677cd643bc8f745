// net/http/peer_uid.hpp — which local user owns the other end of a TCP connection on this host, read
// from the kernel's socket tables (/proc/net/tcp, tcp6): the client socket is the one whose local
// end is the connection's remote end and whose remote end is ours. For checks that need a
// client's identity on the same host (shared memory objects a client may register).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace actorserve {

/// The uid of the socket in a /proc/net/tcp-format `table` whose local end is `client_port` and
/// whose remote end is `server_port` (addresses are not compared: the ports of one host's
/// connection pair identify it); nullopt where there is none.
std::optional<uid_t> socket_owner_in(std::string_view table, uint16_t client_port,
                                     uint16_t server_port);

/// The same, looked up in /proc/net/tcp and /proc/net/tcp6: nullopt for a client on another
/// host (or in another network namespace).
std::optional<uid_t> local_peer_uid(uint16_t client_port, uint16_t server_port);

} // namespace actorserve
