#include "runtime/batch_assembly.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <thread>
#include <stdexcept>

#include "runtime/error.hpp"

namespace actorserve {

namespace {

caf::error bad(std::string msg) {
  return make_error(errc::invalid_input, std::move(msg));
}

/// The shape an input of `spec` must have: "[-1, 3, 224, 224]" (-1: the batch dimension).
std::string expected_shape(const tensor_spec& spec, bool batched) {
  std::string s = "[";
  if (batched)
    s += "-1";
  for (std::size_t i = 0; i < spec.dims.size(); ++i)
    s += (i > 0 || batched ? ", " : "") + std::to_string(spec.dims[i]);
  return s + "]";
}

/// An input's datatype and shape against its declaration (and an image's size where the model
/// preprocesses it).
caf::error check_declared(const model_config& model, const tensor_spec& spec, const tensor& t) {
  const bool batched = model.max_batch_size > 0;
  if (t.dtype != spec.dtype)
    return bad("input '" + spec.name + "': expected datatype " + std::string(to_string(spec.dtype))
               + ", got " + std::string(to_string(t.dtype)));
  bool shape_ok = t.shape.size() == spec.dims.size() + (batched ? 1 : 0);
  for (std::size_t i = 0; shape_ok && i < spec.dims.size(); ++i) {
    auto got = t.shape[i + (batched ? 1 : 0)];
    shape_ok = got >= 0 && (spec.dims[i] < 0 || spec.dims[i] == got);
  }
  if (!shape_ok)
    return bad("input '" + spec.name + "': expected shape " + expected_shape(spec, batched)
               + (batched ? " (-1 = batch dimension, 1 to " + std::to_string(model.max_batch_size)
                              + ")"
                          : "")
               + ", got " + shape_to_string(t.shape));
  if (model.preprocess.enabled && spec.name == model.preprocess.input) {
    // [batch, height, width, 3] (config.cpp checks the declaration and that it batches)
    auto h = t.shape[1], w = t.shape[2];
    if (h < 1 || w < 1)
      return bad("input '" + spec.name + "': an image must be at least 1x1 pixels, got "
                 + std::to_string(h) + "x" + std::to_string(w) + " (shape "
                 + shape_to_string(t.shape) + ")");
  }
  return caf::none;
}

/// An input's batch dimension: within max_batch_size, and the other inputs' (`rows`, -1 before
/// the first).
caf::error check_rows(const model_config& model, const tensor_spec& spec, const tensor& t,
                      int64_t& rows) {
  auto n = t.shape[0];
  if (n < 1 || n > static_cast<int64_t>(model.max_batch_size))
    return bad("input '" + spec.name + "': batch dimension must be between 1 and "
               + std::to_string(model.max_batch_size) + " (max_batch_size of model '"
               + model.name + "'), got " + std::to_string(n));
  if (rows >= 0 && rows != n)
    return bad("input '" + spec.name + "': batch dimension " + std::to_string(n)
               + " differs from the other inputs' " + std::to_string(rows));
  rows = n;
  return caf::none;
}

caf::error check_input_names(const model_config& model, const infer_request& req) {
  for (auto& t : req.inputs)
    if (!model.find_input(t.name)) {
      std::string names;
      for (auto& s : model.inputs)
        names += (names.empty() ? "'" : ", '") + s.name + "'";
      return bad("unexpected input '" + t.name + "' for model '" + model.name
                 + "'; the model's inputs are " + names);
    }
  return caf::none;
}

} // namespace

caf::error validate_request(const model_config& model, infer_request& req) {
  if (auto err = check_input_names(model, req))
    return err;
  std::vector<tensor> ordered;
  ordered.reserve(model.inputs.size());
  int64_t rows = -1;
  for (auto& spec : model.inputs) {
    auto named = [&](const tensor& t) { return t.name == spec.name; };
    auto it = std::find_if(req.inputs.begin(), req.inputs.end(), named);
    if (it == req.inputs.end())
      return bad("missing input '" + spec.name + "' for model '" + model.name + "'");
    if (std::count_if(req.inputs.begin(), req.inputs.end(), named) > 1)
      return bad("input '" + spec.name + "' appears more than once");
    if (auto err = check_declared(model, spec, *it))
      return err;
    if (model.max_batch_size > 0)
      if (auto err = check_rows(model, spec, *it, rows))
        return err;
    if (!it->consistent() && it->dtype == datatype::BYTES)
      return bad("input '" + spec.name + "': its bytes are not "
                 + std::to_string(element_count(it->shape).value_or(0))
                 + " BYTES elements (each a 4-byte length and that many bytes)");
    if (!it->consistent())
      return bad("input '" + spec.name + "': shape " + shape_to_string(it->shape) + " of "
                 + std::string(to_string(it->dtype)) + " needs "
                 + std::to_string(element_count(it->shape).value_or(0) * element_size(it->dtype))
                 + " bytes, got " + std::to_string(it->data.size()));
    ordered.push_back(std::move(*it));
  }
  for (auto& name : req.outputs)
    if (!model.find_output(name))
      return bad("unknown output '" + name + "' requested from model '" + model.name + "'");
  req.inputs = std::move(ordered);
  return caf::none;
}

uint32_t request_rows(const model_config& model, const infer_request& req) {
  if (model.max_batch_size == 0 || req.inputs.empty() || req.inputs[0].shape.empty())
    return 1;
  return static_cast<uint32_t>(req.inputs[0].shape[0]);
}

std::string shape_key(const model_config& model, const infer_request& req) {
  std::string key;
  std::size_t skip = model.max_batch_size > 0 ? 1 : 0;
  char digits[24];
  for (auto& t : req.inputs) {
    for (std::size_t i = skip; i < t.shape.size(); ++i) {
      key.append(digits, std::to_chars(digits, digits + sizeof digits, t.shape[i]).ptr);
      key += ',';
    }
    key += ';';
  }
  return key;
}

std::size_t batch_input::bytes() const {
  std::size_t n = 0;
  for (auto* p : parts)
    n += p->data.size();
  return n;
}

void batch_input::copy_to(uint8_t* dst, unsigned threads) const {
  constexpr std::size_t min_bytes_per_thread = 1 << 20;
  threads = static_cast<unsigned>(
    std::min<std::size_t>({threads, parts.size(), bytes() / min_bytes_per_thread}));
  // Each thread copies every threads-th part to its offset.
  auto copy_some = [this, dst](std::size_t first, std::size_t step) {
    std::size_t offset = 0, k = 0;
    for (auto* p : parts) {
      if (k++ % step == first && !p->data.empty())
        std::memcpy(dst + offset, p->data.data(), p->data.size());
      offset += p->data.size();
    }
  };
  if (threads <= 1) {
    copy_some(0, 1);
    return;
  }
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < threads; ++t)
    helpers.emplace_back(copy_some, t, threads);
  copy_some(0, threads);
  for (auto& h : helpers)
    h.join();
}

tensor batch_input::concatenate() const {
  if (parts.size() == 1)
    return *parts.front();
  tensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  t.data.resize(bytes());
  copy_to(t.data.mutable_data());
  return t;
}

std::vector<batch_input> gather_batch(const model_config& model,
                                      const std::vector<infer_request>& requests) {
  if (requests.empty())
    throw std::runtime_error("gather_batch: empty batch");
  if (model.max_batch_size == 0 && requests.size() != 1)
    throw std::runtime_error("gather_batch: a model without batching takes one request a batch");
  std::vector<batch_input> out(requests.front().inputs.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto& b = out[i];
    auto& first = requests.front().inputs[i];
    b.name = first.name;
    b.dtype = first.dtype;
    b.shape = first.shape;
    if (model.max_batch_size > 0)
      b.shape[0] = 0;
    for (auto& r : requests) {
      b.parts.push_back(&r.inputs[i]);
      if (model.max_batch_size > 0)
        b.shape[0] += r.inputs[i].shape[0];
    }
  }
  return out;
}

std::vector<batch_input> views_of(const std::vector<tensor>& inputs) {
  std::vector<batch_input> views(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    views[i].name = inputs[i].name;
    views[i].dtype = inputs[i].dtype;
    views[i].shape = inputs[i].shape;
    views[i].parts = {&inputs[i]};
  }
  return views;
}

std::vector<tensor> assemble_batch(const model_config& model,
                                   const std::vector<infer_request>& requests) {
  std::vector<tensor> out;
  for (auto& b : gather_batch(model, requests))
    out.push_back(b.concatenate());
  return out;
}

std::vector<std::vector<tensor>> split_batch(const model_config& model,
                                             const std::vector<infer_request>& requests,
                                             std::vector<tensor>&& outputs) {
  if (outputs.size() != model.outputs.size())
    throw std::runtime_error("model '" + model.name + "' returned " + std::to_string(outputs.size())
                             + " outputs, its configuration declares "
                             + std::to_string(model.outputs.size()));
  const bool batched = model.max_batch_size > 0;
  int64_t total_rows = 0;
  for (auto& r : requests)
    total_rows += request_rows(model, r);
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    auto& spec = model.outputs[i];
    auto& t = outputs[i];
    t.name = spec.name;
    if (t.dtype != spec.dtype)
      throw std::runtime_error("output '" + spec.name + "' of model '" + model.name + "' has datatype "
                               + std::string(to_string(t.dtype)) + ", its configuration declares "
                               + std::string(to_string(spec.dtype)));
    if (!t.consistent())
      throw std::runtime_error("output '" + spec.name + "' has " + std::to_string(t.data.size())
                               + " bytes for shape " + shape_to_string(t.shape));
    if (batched && (t.shape.empty() || t.shape[0] != total_rows))
      throw std::runtime_error("output '" + spec.name + "' of model '" + model.name
                               + "' has shape " + shape_to_string(t.shape)
                               + ", expected the batch dimension " + std::to_string(total_rows)
                               + " first");
  }
  auto wanted = [&](const infer_request& r, const std::string& name) {
    return r.outputs.empty() || std::find(r.outputs.begin(), r.outputs.end(), name) != r.outputs.end();
  };
  std::vector<std::vector<tensor>> per_request(requests.size());
  if (!batched || requests.size() == 1) {
    for (auto& t : outputs)
      if (wanted(requests.front(), t.name))
        per_request.front().push_back(std::move(t));
    return per_request;
  }
  for (auto& t : outputs) {
    std::size_t row_bytes = total_rows > 0 ? t.data.size() / static_cast<std::size_t>(total_rows) : 0;
    std::size_t offset = 0;
    for (std::size_t r = 0; r < requests.size(); ++r) {
      auto rows = request_rows(model, requests[r]);
      auto bytes = row_bytes * rows;
      if (wanted(requests[r], t.name)) {
        tensor part;
        part.name = t.name;
        part.dtype = t.dtype;
        part.shape = t.shape;
        part.shape[0] = rows;
        part.data = t.data.slice(offset, bytes); // shares the batch's output bytes
        per_request[r].push_back(std::move(part));
      }
      offset += bytes;
    }
  }
  return per_request;
}

std::vector<tensor> warmup_inputs(const model_config& model, uint32_t rows) {
  std::vector<tensor> out;
  for (auto& spec : model.inputs) {
    tensor t;
    t.name = spec.name;
    t.dtype = spec.dtype;
    t.shape = model.batched_shape(spec, rows);
    t.data.assign(static_cast<std::size_t>(*element_count(t.shape)) * element_size(t.dtype), 0);
    out.push_back(std::move(t));
  }
  return out;
}

caf::error check_batch_outputs(const model_config& model, std::size_t requests,
                               const batch_outputs& out) {
  auto bad = [&](const std::string& what) {
    return make_error(errc::worker_failed, "the outputs sent back for a batch of model '"
                                             + model.name + "' do not fit it: " + what);
  };
  if (out.per_request.size() != requests)
    return bad(std::to_string(out.per_request.size()) + " answers for "
               + std::to_string(requests) + " requests");
  for (auto& outputs : out.per_request)
    for (auto& t : outputs) {
      auto* spec = model.find_output(t.name);
      if (!spec)
        return bad("output '" + t.name + "' is not declared");
      if (t.dtype != spec->dtype)
        return bad("output '" + t.name + "' has datatype " + std::string(to_string(t.dtype))
                   + ", declared " + std::string(to_string(spec->dtype)));
      if (!t.consistent())
        return bad("output '" + t.name + "' has " + std::to_string(t.data.size())
                   + " bytes for shape " + shape_to_string(t.shape) + " of "
                   + std::string(to_string(t.dtype)));
    }
  return caf::none;
}

} // namespace actorserve
