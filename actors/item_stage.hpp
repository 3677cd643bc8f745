// actors/item_stage.hpp — a stage whose work is a function of one item (decode an image, resize
// it, tokenize a string): a front actor spreads each request's items over `threads` detached
// worker actors of its own, so the CPU-bound work runs neither on the I/O threads nor on CAF's
// shared scheduler, at most `threads` items at once; it joins their results in item order. Items
// whose request's deadline passed or whose client left are not started. The image stages use it;
// so can a user's stage (see config/stages.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "runtime/stage.hpp"
#include "runtime/stage_metrics.hpp"

namespace actorserve {

/// One item's outputs, one per declared output, in order: a BYTES output's element, or exactly
/// the bytes a fixed-size output's dims take.
using item_parts = std::vector<std::vector<uint8_t>>;

/// The work on one item: `item` is the request's stage_input with one item in each tensor (its
/// bytes shared, not copied). Called on the workers' threads, several at once (it must be
/// thread-safe). An error (errc code and message) fails that item only.
using item_function = std::function<caf::expected<item_parts>(const stage_input& item)>;

struct item_stage_spec {
  std::string name;                 // for logs
  std::vector<tensor_spec> outputs; // per item; fixed-size ones have no -1 dims
  uint32_t threads = 1;
  item_function work;
  stage_metrics* metrics = nullptr; // where items are counted and timed (none: not counted)
};

/// Spawns the stage (its front and its workers; they end with it).
stage_actor spawn_item_stage(caf::actor_system& sys, item_stage_spec spec);

/// The fixed bytes of one item of `spec` (BYTES: 0, any length).
std::size_t item_bytes(const tensor_spec& spec);

} // namespace actorserve
