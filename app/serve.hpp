// app/serve.hpp — `actorserve serve`: runs a deployment until SIGINT/SIGTERM, then drains.
#pragma once

#include "app/command_line.hpp"

namespace actorserve {

/// The process's exit status: 0 after a clean stop, 1 when the deployment is invalid, a front
/// cannot start, or the root supervisor gave up.
int serve(const serve_options& opts);

} // namespace actorserve
