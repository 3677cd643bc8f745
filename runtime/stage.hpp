// The public API for pipeline stages: actors that pre- or post-process, route or enrich a
// pipeline's tensors between its models (models[].pipeline steps with "stage"). A stage is an
// actor answering stage_input with stage_output (runtime/messages.hpp): one request's items in,
// tensors or per-item errors out, asynchronously (a response promise), and it stops work on items
// whose deadline passed or whose client left (stage_input::wanted). Stages are found by name in
// an open registry, as backends are; the image stages (fetch, decode, preprocess) register
// themselves exactly as a user's stage or plugin does. "Writing your own actor" in
// config/stages.md walks through one.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "runtime/config.hpp"
#include "runtime/host.hpp" // (steady_now_ns: what stage_input::deadline_ns is measured on)
#include "runtime/messages.hpp"

namespace actorserve {

/// The interface every stage actor implements.
using stage_actor =
  caf::typed_actor<caf::replies_to<stage_atom, stage_input>::with<stage_output>>;

/// A stage step's "parameters" from the deployment file, read with the checks the deployment's
/// other settings get: a value of the wrong kind or out of range is an error naming its JSON
/// path; a key that the stage never reads is an error too (reported by unread_keys()).
class stage_parameters {
public:
  /// `json_text`: the parameters object as written ("{}" or "" when there is none); `path`: its
  /// JSON path for messages ("models[2].pipeline[0].parameters").
  stage_parameters(std::string path, const std::string& json_text);
  ~stage_parameters();
  stage_parameters(const stage_parameters&);

  std::string string(std::string_view key, std::string fallback,
                     const std::vector<std::string>& choices = {});
  int64_t integer(std::string_view key, int64_t fallback, int64_t lo, int64_t hi);
  double number(std::string_view key, double fallback, double lo, double hi);
  bool boolean(std::string_view key, bool fallback);
  /// An array of strings (empty when absent).
  std::vector<std::string> strings(std::string_view key);
  /// An array of exactly `n` numbers, or `fallback` when absent.
  std::vector<double> numbers(std::string_view key, std::vector<double> fallback, std::size_t n);

  /// Records an error about `key` (a stage's own check across keys).
  void fail(std::string_view key, const std::string& what);
  /// Every error so far, each "PATH.KEY: what was wrong", plus one per key never read.
  std::vector<std::string> errors() const;
  const std::string& path() const { return path_; }

  struct impl; // (the parsed values and what was read of them)

private:
  std::string path_;
  std::unique_ptr<impl> impl_;
};

/// What a stage takes and makes: tensor specs per item (dims without the item dimension, -1 =
/// any size), checked against the pipeline's other steps as a model's are.
struct stage_signature {
  std::vector<tensor_spec> inputs;
  std::vector<tensor_spec> outputs;
};

/// What a stage actor is made from: the step it serves and its (checked) parameters.
struct stage_context {
  std::string name; // "pipeline/step/stage", for logs and metrics
  const model_config& pipeline;
  const pipeline_step& step;
  stage_parameters parameters;
};

/// A registered stage: how its parameters are read and checked (errors go to the
/// stage_parameters) and what it then takes and makes; and how to spawn one.
struct stage_definition {
  std::function<stage_signature(stage_parameters&)> describe;
  std::function<stage_actor(caf::actor_system&, stage_context&)> spawn;
};

class stage_registry {
public:
  /// The process-wide registry that compiled-in stages and plugins add themselves to.
  static stage_registry& global();

  /// Adds `def` under `name`; false if the name is taken.
  bool add(const std::string& name, stage_definition def);

  /// nullptr when no stage has that name.
  const stage_definition* find(const std::string& name) const;

  std::vector<std::string> names() const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, std::unique_ptr<stage_definition>> stages_;
};

/// Registers a stage from a static initializer: `static stage_registrar reg{"name", def};` in a
/// source file linked as an object or in a plugin.
struct stage_registrar {
  stage_registrar(const std::string& name, stage_definition def);
};

/// The items of a stage input: the first dimension of its first tensor (0 without tensors).
int64_t item_count(const stage_input& in);

/// `t`'s items (along its first dimension) as tensors of one item each, sharing its bytes; empty
/// when `t` has no first dimension or its bytes do not match its shape.
std::vector<tensor> split_items(const tensor& t);

/// The inverse of split_items: one tensor named and typed as `spec` (dims per item), holding each
/// item's bytes in order (a fixed-size item's, or a BYTES item's elements with their lengths).
tensor join_items(const tensor_spec& spec, const std::vector<const byte_buffer*>& items);

/// The element of a BYTES tensor of one item ("" for anything else).
std::string_view only_element(const tensor& t);


} // namespace actorserve
