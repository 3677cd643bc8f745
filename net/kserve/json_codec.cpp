#include "net/kserve/json_codec.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <optional>

#include <boost/json.hpp>

#include "runtime/error.hpp"
#include "runtime/json_text.hpp"

namespace json = boost::json;

namespace actorserve::kserve {

namespace {

caf::error bad(std::string msg) {
  return make_error(errc::invalid_input, std::move(msg));
}

std::string kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
    case json::kind::double_: return "a number (" + json::serialize(v) + ")";
    default: return "an integer (" + json::serialize(v) + ")";
  }
}

template <class T>
void put(uint8_t*& p, T x) {
  std::memcpy(p, &x, sizeof x);
  p += sizeof x;
}

/// Writes one JSON element as `dtype` at p; returns an error text or "".
template <class Int>
bool to_int(const json::value& v, Int& out) {
  if (v.is_int64()) {
    auto x = v.get_int64();
    if (x < static_cast<int64_t>(std::numeric_limits<Int>::min())
        || (x > 0 && static_cast<uint64_t>(x) > static_cast<uint64_t>(std::numeric_limits<Int>::max())))
      return false;
    out = static_cast<Int>(x);
    return true;
  }
  if (v.is_uint64()) {
    auto x = v.get_uint64();
    if (x > static_cast<uint64_t>(std::numeric_limits<Int>::max()))
      return false;
    out = static_cast<Int>(x);
    return true;
  }
  return false;
}

bool write_element(const json::value& v, datatype dt, uint8_t*& p) {
  switch (dt) {
    case datatype::BOOL:
      if (!v.is_bool())
        return false;
      put<uint8_t>(p, v.get_bool() ? 1 : 0);
      return true;
    case datatype::UINT8: { uint8_t x; if (!to_int(v, x)) return false; put(p, x); return true; }
    case datatype::INT8: { int8_t x; if (!to_int(v, x)) return false; put(p, x); return true; }
    case datatype::INT16: { int16_t x; if (!to_int(v, x)) return false; put(p, x); return true; }
    case datatype::INT32: { int32_t x; if (!to_int(v, x)) return false; put(p, x); return true; }
    case datatype::INT64: { int64_t x; if (!to_int(v, x)) return false; put(p, x); return true; }
    case datatype::FP16:
    case datatype::FP32:
    case datatype::FP64: {
      if (!v.is_number())
        return false;
      double x = v.to_number<double>();
      if (dt == datatype::FP64)
        put(p, x);
      else if (dt == datatype::FP32)
        put(p, static_cast<float>(x));
      else
        put(p, float_to_half(static_cast<float>(x)));
      return true;
    }
    case datatype::BYTES: break; // (json_bytes_to_tensor)
  }
  return false;
}

const char* expected_kind(datatype dt) {
  switch (dt) {
    case datatype::BOOL: return "true or false";
    case datatype::FP16:
    case datatype::FP32:
    case datatype::FP64: return "a number";
    default: return "an integer in range";
  }
}

/// Counts leaf elements of a (possibly nested) array.
bool count_leaves(const json::value& v, int64_t& n, int depth) {
  if (depth > 32)
    return false;
  if (!v.is_array()) {
    ++n;
    return true;
  }
  for (auto& e : v.get_array())
    if (!count_leaves(e, n, depth + 1))
      return false;
  return true;
}

/// The largest finite magnitude of a narrower floating-point datatype (a JSON number past it
/// cannot be converted: that is undefined behaviour, not infinity); nullopt for the others.
std::optional<double> float_limit(datatype dt) {
  if (dt == datatype::FP32)
    return static_cast<double>(std::numeric_limits<float>::max());
  if (dt == datatype::FP16)
    return 65504.0;
  return std::nullopt;
}

/// The common case, FP32 data as one flat array of numbers in range, written in one loop; false
/// (`out` partly written) for anything else, which write_leaves then writes or refuses.
bool flat_fp32(const json::array& data, uint8_t* out) {
  constexpr double limit = std::numeric_limits<float>::max();
  for (auto& e : data) {
    double x = 0;
    if (e.is_double())
      x = e.get_double();
    else if (e.is_int64())
      x = static_cast<double>(e.get_int64());
    else if (e.is_uint64())
      x = static_cast<double>(e.get_uint64());
    else
      return false;
    if (!(std::abs(x) <= limit))
      return false;
    auto f = static_cast<float>(x);
    std::memcpy(out, &f, sizeof f);
    out += sizeof f;
  }
  return true;
}

caf::error write_leaves(const json::value& v, tensor& t, uint8_t*& p, int64_t& index) {
  if (v.is_array()) {
    for (auto& e : v.get_array())
      if (auto err = write_leaves(e, t, p, index))
        return err;
    return caf::none;
  }
  if (auto limit = float_limit(t.dtype); limit && v.is_number()
                                         && std::abs(v.to_number<double>()) > *limit) {
    char bound[32];
    std::snprintf(bound, sizeof bound, "%.8g", *limit);
    return bad("input '" + t.name + "': data[" + std::to_string(index) + "] = "
               + json::serialize(v) + " is outside the range of datatype "
               + std::string(to_string(t.dtype)) + " (magnitude at most " + bound + ")");
  }
  if (!write_element(v, t.dtype, p))
    return bad("input '" + t.name + "': data[" + std::to_string(index) + "] must be "
               + expected_kind(t.dtype) + " for datatype " + std::string(to_string(t.dtype))
               + ", got " + kind_name(v));
  ++index;
  return caf::none;
}

template <class T>
void append_number(std::string& out, T x) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x);
  out.append(buf, res.ptr);
}

void append_float(std::string& out, double x, bool single) {
  if (!std::isfinite(x)) { // JSON has no NaN/Inf; Triton writes them as strings too
    out += std::isnan(x) ? "\"NaN\"" : (x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  if (single)
    append_number(out, static_cast<float>(x));
  else
    append_number(out, x);
}

std::string shape_json(const std::vector<int64_t>& shape) {
  return shape_to_string(shape, ",");
}

} // namespace

std::string quote(std::string_view s) {
  return json_quote(s);
}

const shm_output* decoded_request::in_shm(const std::string& output) const {
  for (auto& o : shm_outputs)
    if (o.name == output)
      return &o;
  return nullptr;
}

bool decoded_request::want_binary(const std::string& output) const {
  if (std::find(binary_outputs.begin(), binary_outputs.end(), output) != binary_outputs.end())
    return true;
  if (std::find(json_outputs.begin(), json_outputs.end(), output) != json_outputs.end())
    return false;
  return binary_output_default;
}

namespace {

/// BYTES 'data': strings (nested as the shape is or flat), each element's bytes as written.
caf::error json_bytes_to_tensor(const json::value& data, tensor& t, std::vector<uint8_t>& out,
                                int64_t& index) {
  if (data.is_array()) {
    for (auto& e : data.get_array())
      if (auto err = json_bytes_to_tensor(e, t, out, index))
        return err;
    return caf::none;
  }
  if (!data.is_string())
    return bad("input '" + t.name + "': data[" + std::to_string(index)
               + "] must be a string for datatype BYTES, got " + kind_name(data));
  auto& s = data.get_string();
  append_bytes_element(out, {s.data(), s.size()});
  ++index;
  return caf::none;
}

} // namespace

caf::error json_data_to_tensor(const json::value& data, tensor& t) {
  auto count = element_count(t.shape);
  if (!count)
    return bad("input '" + t.name + "': invalid shape " + shape_to_string(t.shape));
  int64_t n = 0;
  if (!count_leaves(data, n, 0))
    return bad("input '" + t.name + "': data is nested too deeply");
  if (!data.is_array())
    return bad("input '" + t.name + "': data must be an array, got " + kind_name(data));
  if (n != *count)
    return bad("input '" + t.name + "': shape " + shape_to_string(t.shape) + " needs "
               + std::to_string(*count) + " elements, data has " + std::to_string(n));
  int64_t index = 0;
  if (t.dtype == datatype::BYTES) {
    std::vector<uint8_t> out;
    if (auto err = json_bytes_to_tensor(data, t, out, index))
      return err;
    t.data = std::move(out);
    return caf::none;
  }
  t.data.resize(static_cast<std::size_t>(*count) * element_size(t.dtype));
  uint8_t* p = t.data.mutable_data();
  if (t.dtype == datatype::FP32 && flat_fp32(data.get_array(), p))
    return caf::none;
  return write_leaves(data, t, p, index); // (also names the first element that is wrong)
}

namespace {

/// Allocates from the heap and counts what it holds in a memory_budget, refusing (bad_alloc)
/// what would pass its limit; gives the rest back to the budget when it ends. Two serve a parse:
/// one holds the parser's temporary stack of values (which it frees exactly), one is the
/// upstream of the document's arena (which frees its blocks only when it ends, and not always
/// with the size it asked for: so that one's count stays until the end).
class budgeted_resource final : public json::memory_resource {
public:
  /// Thrown past the limit; `alone`: the request alone would pass it.
  struct refused : std::bad_alloc {
    bool alone = false;
  };

  /// `other`: the resource sharing this request's part of the budget (for `alone`).
  budgeted_resource(const memory_budget& b, bool exact, const budgeted_resource* other = nullptr)
    : budget_(b), exact_(exact), other_(other) {}
  ~budgeted_resource() override { budget_.used->fetch_sub(taken_); }

  uint64_t taken() const { return taken_; }

private:
  void* do_allocate(std::size_t n, std::size_t align) override {
    auto before = budget_.used->fetch_add(n);
    if (before + n > budget_.limit) {
      budget_.used->fetch_sub(n);
      refused r;
      r.alone = budget_.own + taken_ + (other_ ? other_->taken() : 0) + n > budget_.limit;
      throw r;
    }
    taken_ += n;
    return ::operator new(n, std::align_val_t(align));
  }
  void do_deallocate(void* p, std::size_t n, std::size_t align) override {
    ::operator delete(p, std::align_val_t(align));
    if (exact_) {
      taken_ -= n;
      budget_.used->fetch_sub(n);
    }
  }
  bool do_is_equal(const json::memory_resource& other) const noexcept override {
    return this == &other;
  }

  memory_budget budget_;
  bool exact_;
  const budgeted_resource* other_;
  uint64_t taken_ = 0;
};

/// Where a tensor's parameters put it in shared memory: shared_memory_region and
/// shared_memory_byte_size (both or neither), shared_memory_offset (optional, 0).
struct shm_place {
  std::shared_ptr<const shm_region> region;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

caf::expected<std::optional<shm_place>> shm_params(const json::object& po, const std::string& what,
                                                   const shm_registry* shm) {
  auto region = po.find("shared_memory_region");
  auto size = po.find("shared_memory_byte_size");
  auto offset = po.find("shared_memory_offset");
  if (region == po.end() && size == po.end() && offset == po.end())
    return std::optional<shm_place>{};
  if (region == po.end() || size == po.end())
    return bad(what + ": shared memory needs both shared_memory_region and "
                      "shared_memory_byte_size");
  if (!shm)
    return bad(what + ": shared memory is not enabled on this server (its deployment's "
                      "server.http.allow_shared_memory)");
  if (!region->value().is_string())
    return bad(what + ": shared_memory_region must be a string, got " + kind_name(region->value()));
  shm_place place;
  if (!to_int(size->value(), place.byte_size))
    return bad(what + ": shared_memory_byte_size must be a non-negative integer, got "
               + kind_name(size->value()));
  if (offset != po.end() && !to_int(offset->value(), place.offset))
    return bad(what + ": shared_memory_offset must be a non-negative integer, got "
               + kind_name(offset->value()));
  auto found = shm->find(region->value().get_string());
  if (!found)
    return bad(what + ": " + error_message(found.error()));
  place.region = std::move(*found);
  if (auto err = place.region->check_range(place.offset, place.byte_size, what))
    return err;
  return std::optional<shm_place>{std::move(place)};
}

} // namespace

namespace {

/// A request's JSON document, parsed within a memory budget (when given one). It lives in its own
/// buffers and arena, so it stays where it is made: parse, then read `object()`.
class budgeted_document {
public:
  explicit budgeted_document(const memory_budget* budget) : budget_(budget) {
    if (budget && budget->used) {
      document_memory_.emplace(*budget, false);
      parser_memory_.emplace(*budget, true, &*document_memory_);
    }
    // A small document is parsed in these buffers; a larger one's arena and the parser's stack
    // grow from the budgeted resources (declared before them: they outlive what they hold).
    arena_.emplace(small_document_, sizeof small_document_, counted(document_memory_));
  }

  /// An error when `text` is not a JSON object, or would take more memory than the budget has
  /// left (overloaded) or could ever give (payload_too_large).
  caf::error parse(std::string_view text) {
    json::error_code ec;
    try {
      json::parser parser(counted(parser_memory_), {}, small_stack_, sizeof small_stack_);
      parser.reset(&*arena_);
      parser.write(text, ec);
      if (!ec) // (constructed, not assigned: an assignment keeps the target's storage, so it
        doc_.emplace(parser.release()); // would copy the whole tree out of the arena)
    } catch (const budgeted_resource::refused& r) {
      return refusal(r, text.size());
    }
    if (ec)
      return bad("request body is not valid JSON: " + ec.message());
    if (!doc_->is_object())
      return bad("request body must be a JSON object, got " + kind_name(*doc_));
    return caf::none;
  }

  const json::object& object() const { return doc_->get_object(); }

private:
  static json::storage_ptr counted(std::optional<budgeted_resource>& r) {
    return r ? json::storage_ptr(&*r) : json::storage_ptr();
  }

  caf::error refusal(const budgeted_resource::refused& r, std::size_t text_bytes) const {
    auto what = "the request's " + std::to_string(text_bytes)
                + "-byte JSON document takes more memory than the server";
    auto limit = " (http.max_inflight_body_bytes " + std::to_string(budget_->limit) + ")";
    if (r.alone)
      return make_error(errc::payload_too_large,
                        what + " allows for request bodies" + limit
                          + ": send large tensors as binary data (binary_data_size)");
    return make_error(errc::overloaded, "overloaded: " + what + " has left for request bodies"
                                          + limit + "; try again");
  }

  const memory_budget* budget_;
  std::optional<budgeted_resource> document_memory_, parser_memory_;
  unsigned char small_document_[4096], small_stack_[4096];
  std::optional<json::monotonic_resource> arena_;
  std::optional<json::value> doc_; // (its storage: the arena)
};

/// An error naming the first key of `obj` not in `known`, worded by `unknown`.
template <class Describe>
caf::error check_keys(const json::object& obj, std::initializer_list<std::string_view> known,
                      Describe unknown) {
  for (auto& kv : obj)
    if (std::find(known.begin(), known.end(), kv.key()) == known.end())
      return bad(unknown(std::string(kv.key())));
  return caf::none;
}

caf::error read_boolean(const json::object& params, std::string_view key, bool& out) {
  auto p = params.find(key);
  if (p == params.end())
    return caf::none;
  if (!p->value().is_bool())
    return bad("parameter '" + std::string(key) + "' must be true or false, got "
               + kind_name(p->value()));
  out = p->value().get_bool();
  return caf::none;
}

/// The request's parameters: timeout, priority, binary_data_output, timing, actorserve_fault.
caf::error read_request_parameters(const json::value& v, decoded_request& out) {
  if (!v.is_object())
    return bad("'parameters' must be an object, got " + kind_name(v));
  auto& params = v.get_object();
  auto& req = out.request;
  if (auto p = params.find("timeout"); p != params.end()) {
    int64_t t = -1;
    if (!to_int(p->value(), t) || t < 1)
      return bad("parameter 'timeout' must be a positive integer (microseconds), got "
                 + kind_name(p->value()));
    req.timeout_us = t;
  }
  if (auto p = params.find("priority"); p != params.end() && !to_int(p->value(), req.priority))
    return bad("parameter 'priority' must be a non-negative integer (1 = highest, 0 = the "
               "model's default), got " + kind_name(p->value()));
  for (auto& kv : params) // (strings for pipeline stages, e.g. images_are)
    if (kv.value().is_string())
      req.parameters[std::string(kv.key())] = std::string(kv.value().get_string());
  if (auto err = read_boolean(params, "binary_data_output", out.binary_output_default))
    return err;
  if (auto err = read_boolean(params, "timing", out.timing))
    return err;
  if (auto p = params.find("actorserve_fault"); p != params.end()) {
    if (!p->value().is_string())
      return bad("parameter 'actorserve_fault' must be a string");
    req.fault = std::string(p->value().get_string());
    if (!is_fault_kind(req.fault))
      return bad("parameter 'actorserve_fault' must be " + std::string(fault_kinds_text)
                 + ", got \"" + req.fault + "\"");
  }
  return caf::none;
}

/// An input's name, datatype and shape; the bytes its shape and datatype take.
caf::expected<uint64_t> read_input_header(const json::object& io, tensor& t) {
  auto name = io.find("name");
  if (name == io.end() || !name->value().is_string())
    return bad("an input has no string 'name'");
  t.name = std::string(name->value().get_string());
  if (auto err = check_keys(io, {"name", "shape", "datatype", "parameters", "data"},
                            [&](const std::string& key) {
                              return "input '" + t.name + "': unknown key '" + key + "'";
                            }))
    return err;
  auto dt = io.find("datatype");
  if (dt == io.end() || !dt->value().is_string())
    return bad("input '" + t.name + "': missing string 'datatype'");
  auto dts = std::string(dt->value().get_string());
  auto parsed = parse_datatype(dts);
  if (!parsed)
    return bad("input '" + t.name + "': unsupported datatype '" + dts + "'; expected "
               + datatype_list);
  t.dtype = *parsed;
  auto shape = io.find("shape");
  if (shape == io.end() || !shape->value().is_array())
    return bad("input '" + t.name + "': missing 'shape' array");
  for (auto& d : shape->value().get_array()) {
    int64_t x;
    if (!to_int(d, x) || x < 0)
      return bad("input '" + t.name + "': shape must hold non-negative integers, got "
                 + json::serialize(shape->value()));
    t.shape.push_back(x);
  }
  auto bytes = tensor_bytes(t.shape, t.dtype);
  if (!bytes)
    return bad("input '" + t.name + "': shape " + shape_to_string(t.shape) + " is too large");
  return *bytes;
}

std::string size_mismatch(const tensor& t, const char* what, uint64_t given, uint64_t needed) {
  if (t.dtype == datatype::BYTES)
    return "input '" + t.name + "': " + what + " " + std::to_string(given) + " is less than "
           + "shape " + shape_to_string(t.shape) + " of BYTES takes (" + std::to_string(needed)
           + " bytes: a 4-byte length per element)";
  return "input '" + t.name + "': " + what + " " + std::to_string(given) + " does not match shape "
         + shape_to_string(t.shape) + " of " + std::string(to_string(t.dtype)) + " ("
         + std::to_string(needed) + " bytes)";
}

/// Whether `given` bytes can hold what `needed` says (for BYTES: at least that many).
bool size_fits(const tensor& t, uint64_t given, uint64_t needed) {
  return t.dtype == datatype::BYTES ? given >= needed : given == needed;
}

/// BYTES data taken whole from a binary source: it must be exactly the shape's elements.
caf::error check_bytes_elements(const tensor& t, const char* source) {
  if (t.dtype != datatype::BYTES || t.consistent())
    return caf::none;
  return bad("input '" + t.name + "': its " + source + " are not "
             + std::to_string(element_count(t.shape).value_or(0))
             + " BYTES elements (shape " + shape_to_string(t.shape)
             + "), each a 4-byte little-endian length followed by that many bytes");
}

/// The binary tensor data of a request: what follows its JSON, taken input by input.
struct binary_data {
  std::string_view bytes;
  std::shared_ptr<const void> owner; // keeps `bytes` alive: inputs are views of it, not copies
  bool declared = false;             // the request has Inference-Header-Content-Length
  std::size_t taken = 0;
};

/// Where an input's bytes are: in a shared memory region, in the binary data, or in 'data'.
struct input_source {
  const json::value* data = nullptr;
  std::optional<uint64_t> binary_size;
  std::optional<shm_place> shm;
};

caf::expected<input_source> read_input_source(const json::object& io, const std::string& what,
                                              const shm_registry* shm) {
  input_source src;
  if (auto d = io.find("data"); d != io.end())
    src.data = &d->value();
  auto p = io.find("parameters");
  if (p == io.end())
    return src;
  if (!p->value().is_object())
    return bad(what + ": 'parameters' must be an object");
  auto& po = p->value().get_object();
  if (auto b = po.find("binary_data_size"); b != po.end()) {
    uint64_t x;
    if (!to_int(b->value(), x))
      return bad(what + ": binary_data_size must be a non-negative integer");
    src.binary_size = x;
  }
  auto place = shm_params(po, what, shm);
  if (!place)
    return std::move(place.error());
  src.shm = std::move(*place);
  return src;
}

caf::error read_shm_input(const shm_place& place, const input_source& src, uint64_t needed,
                          const memory_budget* budget, tensor& t) {
  const std::string what = "input '" + t.name + "'";
  if (src.data || src.binary_size)
    return bad(what + ": has shared memory and also "
               + (src.binary_size ? "binary_data_size" : "'data'") + "; give one");
  if (!size_fits(t, place.byte_size, needed))
    return bad(size_mismatch(t, "shared_memory_byte_size", place.byte_size, needed));
  auto bytes = budget && budget->used
                 ? place.region->read(place.offset, place.byte_size, what, budget->used,
                                      budget->limit, budget->own)
                 : place.region->read(place.offset, place.byte_size, what);
  if (!bytes)
    return std::move(bytes.error());
  t.data = std::move(*bytes);
  return check_bytes_elements(t, "shared memory bytes");
}

caf::error read_binary_input(uint64_t size, const input_source& src, uint64_t needed,
                             binary_data& binary, tensor& t) {
  if (src.data)
    return bad("input '" + t.name + "': has both 'data' and binary_data_size");
  if (!binary.declared)
    return bad("input '" + t.name + "': binary_data_size given but the request has no "
               "Inference-Header-Content-Length header");
  if (!size_fits(t, size, needed))
    return bad(size_mismatch(t, "binary_data_size", size, needed));
  if (binary.taken + size > binary.bytes.size())
    return bad("input '" + t.name + "': binary data ends after "
               + std::to_string(binary.bytes.size() - binary.taken) + " of its "
               + std::to_string(size) + " bytes");
  auto* p = reinterpret_cast<const uint8_t*>(binary.bytes.data()) + binary.taken;
  if (binary.owner)
    t.data = byte_buffer::view(binary.owner, p, size);
  else
    t.data.assign(p, p + size);
  binary.taken += size;
  return check_bytes_elements(t, "binary data bytes");
}

caf::expected<tensor> read_input(const json::value& in, binary_data& binary,
                                 const memory_budget* budget, const shm_registry* shm) {
  if (!in.is_object())
    return bad("each element of 'inputs' must be an object, got " + kind_name(in));
  auto& io = in.get_object();
  tensor t;
  auto needed = read_input_header(io, t);
  if (!needed)
    return std::move(needed.error());
  auto src = read_input_source(io, "input '" + t.name + "'", shm);
  if (!src)
    return std::move(src.error());
  caf::error err;
  if (src->shm)
    err = read_shm_input(*src->shm, *src, *needed, budget, t);
  else if (src->binary_size)
    err = read_binary_input(*src->binary_size, *src, *needed, binary, t);
  else if (!src->data)
    err = bad("input '" + t.name + "': has neither 'data' nor binary_data_size (nor shared memory)");
  else
    err = json_data_to_tensor(*src->data, t);
  if (err)
    return err;
  return t;
}

caf::error read_inputs(const json::object& obj, binary_data& binary, const memory_budget* budget,
                       const shm_registry* shm, infer_request& req) {
  auto it = obj.find("inputs");
  if (it == obj.end())
    return bad("the request has no 'inputs'");
  if (!it->value().is_array() || it->value().get_array().empty())
    return bad("'inputs' must be a non-empty array");
  for (auto& in : it->value().get_array()) {
    auto t = read_input(in, binary, budget, shm);
    if (!t)
      return std::move(t.error());
    req.inputs.push_back(std::move(*t));
  }
  if (binary.taken != binary.bytes.size())
    return bad("the body carries " + std::to_string(binary.bytes.size() - binary.taken)
               + " bytes of binary data that no input's binary_data_size claims");
  return caf::none;
}

/// An output's parameters: binary_data, classification, shared memory.
caf::error read_output_parameters(const json::object& po, const std::string& oname,
                                  const shm_registry* shm, decoded_request& out) {
  const std::string what = "output '" + oname + "'";
  auto b = po.find("binary_data");
  if (b != po.end()) {
    if (!b->value().is_bool())
      return bad(what + ": binary_data must be true or false");
    (b->value().get_bool() ? out.binary_outputs : out.json_outputs).push_back(oname);
  }
  auto place = shm_params(po, what, shm);
  if (!place)
    return std::move(place.error());
  if (auto c = po.find("classification"); c != po.end()) {
    uint32_t count = 0;
    if (!to_int(c->value(), count) || count < 1)
      return bad(what + ": classification must be a positive integer (the classes to "
                        "return per row), got " + kind_name(c->value()));
    if (*place)
      return bad(what + ": classification answers cannot go to shared memory");
    out.classifications.push_back({oname, count});
  }
  if (!*place)
    return caf::none;
  if (b != po.end() && b->value().get_bool())
    return bad(what + ": has shared memory and also binary_data true; give one");
  if (!(*place)->region->writable())
    return bad(what + ": shared memory region '" + (*place)->region->name()
               + "' is read-only for the server");
  out.shm_outputs.push_back({oname, std::move((*place)->region), (*place)->offset,
                             (*place)->byte_size});
  return caf::none;
}

caf::error read_outputs(const json::value& v, const shm_registry* shm, decoded_request& out) {
  if (!v.is_array())
    return bad("'outputs' must be an array");
  for (auto& o : v.get_array()) {
    if (!o.is_object())
      return bad("each element of 'outputs' must be an object");
    auto& oo = o.get_object();
    auto name = oo.find("name");
    if (name == oo.end() || !name->value().is_string())
      return bad("an output has no string 'name'");
    auto oname = std::string(name->value().get_string());
    out.request.outputs.push_back(oname);
    if (auto p = oo.find("parameters"); p != oo.end() && p->value().is_object())
      if (auto err = read_output_parameters(p->value().get_object(), oname, shm, out))
        return err;
  }
  return caf::none;
}

} // namespace

caf::expected<decoded_request> decode_request(std::string_view body,
                                              std::optional<std::size_t> json_length,
                                              std::shared_ptr<const void> body_owner,
                                              const memory_budget* budget,
                                              const shm_registry* shm) {
  std::string_view json_part = body;
  binary_data binary{{}, std::move(body_owner), json_length.has_value()};
  if (json_length) {
    if (*json_length > body.size())
      return bad("Inference-Header-Content-Length is " + std::to_string(*json_length)
                 + " but the body has only " + std::to_string(body.size()) + " bytes");
    json_part = body.substr(0, *json_length);
    binary.bytes = body.substr(*json_length);
  }
  budgeted_document doc{budget};
  if (auto err = doc.parse(json_part))
    return err;
  auto& obj = doc.object();
  if (auto err = check_keys(obj, {"id", "parameters", "inputs", "outputs"},
                            [](const std::string& key) {
                              return "unknown key '" + key
                                     + "' in the request; expected id, parameters, inputs, outputs";
                            }))
    return err;
  decoded_request out;
  if (auto it = obj.find("id"); it != obj.end()) {
    if (!it->value().is_string())
      return bad("'id' must be a string, got " + kind_name(it->value()));
    out.request.client_id = std::string(it->value().get_string());
  }
  if (auto it = obj.find("parameters"); it != obj.end())
    if (auto err = read_request_parameters(it->value(), out))
      return err;
  if (auto err = read_inputs(obj, binary, budget, shm, out.request))
    return err;
  if (auto it = obj.find("outputs"); it != obj.end())
    if (auto err = read_outputs(it->value(), shm, out))
      return err;
  return out;
}

void append_json_data(std::string& out, const tensor& t) {
  out += '[';
  auto n = static_cast<std::size_t>(element_count(t.shape).value_or(0));
  if (t.dtype == datatype::BYTES) { // (as strings: bytes that are not UTF-8 belong in binary)
    auto elements = bytes_elements(t.view(), static_cast<int64_t>(n));
    for (std::size_t i = 0; elements && i < elements->size(); ++i)
      out += (i > 0 ? "," : "") + json_quote((*elements)[i]);
    out += ']';
    return;
  }
  const uint8_t* p = t.data.data();
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0)
      out += ',';
    switch (t.dtype) {
      case datatype::BOOL: out += p[i] ? "true" : "false"; break;
      case datatype::UINT8: append_number(out, static_cast<unsigned>(p[i])); break;
      case datatype::INT8: append_number(out, static_cast<int>(static_cast<int8_t>(p[i]))); break;
      case datatype::INT16: { int16_t x; std::memcpy(&x, p + 2 * i, 2); append_number(out, x); break; }
      case datatype::INT32: { int32_t x; std::memcpy(&x, p + 4 * i, 4); append_number(out, x); break; }
      case datatype::INT64: { int64_t x; std::memcpy(&x, p + 8 * i, 8); append_number(out, x); break; }
      case datatype::FP16: { uint16_t x; std::memcpy(&x, p + 2 * i, 2); append_float(out, half_to_float(x), true); break; }
      case datatype::FP32: { float x; std::memcpy(&x, p + 4 * i, 4); append_float(out, x, true); break; }
      case datatype::FP64: { double x; std::memcpy(&x, p + 8 * i, 8); append_float(out, x, false); break; }
      case datatype::BYTES: break; // (above)
    }
  }
  out += ']';
}

caf::expected<shm_registration> decode_shm_registration(std::string_view body) {
  json::error_code ec;
  auto doc = json::parse(body, ec);
  if (ec)
    return bad("the body is not JSON (" + ec.message() + ")");
  if (!doc.is_object())
    return bad("the body is not an object");
  auto& o = doc.get_object();
  for (auto& kv : o)
    if (kv.key() != "key" && kv.key() != "offset" && kv.key() != "byte_size")
      return bad("unknown key '" + std::string(kv.key()) + "'");
  shm_registration r;
  auto* key = o.if_contains("key");
  auto* offset = o.if_contains("offset");
  auto* size = o.if_contains("byte_size");
  if (!key || !key->is_string())
    return bad("'key' must be a string");
  if (offset && !to_int(*offset, r.offset))
    return bad("'offset' must be a non-negative integer");
  if (!size || !to_int(*size, r.byte_size))
    return bad("'byte_size' must be a non-negative integer");
  r.key = std::string(key->get_string());
  return r;
}

caf::expected<std::pair<uint32_t, uint32_t>> parse_instances_request(std::string_view body) {
  json::error_code ec;
  auto doc = json::parse(body, ec);
  if (ec || !doc.is_object())
    return bad("expected a JSON object: {\"instances\": n} or {\"min_instances\": a, "
               "\"max_instances\": b}");
  auto& o = doc.get_object();
  for (auto& kv : o)
    if (kv.key() != "instances" && kv.key() != "min_instances" && kv.key() != "max_instances")
      return bad("unknown key '" + std::string(kv.key()) + "' (instances, or min_instances and "
                 "max_instances)");
  auto read = [&](const char* key, uint32_t& out) -> caf::error {
    uint64_t v = 0;
    if (!to_int(o.at(key), v) || v > 4096)
      return bad(std::string("'") + key + "' must be an integer from 0 to 4096");
    out = static_cast<uint32_t>(v);
    return {};
  };
  std::pair<uint32_t, uint32_t> r;
  if (o.contains("instances")) {
    if (o.size() != 1)
      return bad("'instances' goes alone (min_instances and max_instances are for autoscaling)");
    if (auto err = read("instances", r.first))
      return err;
    r.second = r.first;
    return r;
  }
  if (!o.contains("min_instances") || !o.contains("max_instances"))
    return bad("expected {\"instances\": n} or both min_instances and max_instances");
  if (auto err = read("min_instances", r.first))
    return err;
  if (auto err = read("max_instances", r.second))
    return err;
  return r;
}

caf::error write_shm_outputs(const infer_response& r, const decoded_request& req) {
  for (auto& t : r.outputs) {
    auto* shm = req.in_shm(t.name);
    if (!shm)
      continue;
    const std::string what = "output '" + t.name + "'";
    if (t.data.size() > shm->byte_size)
      return bad(what + ": its " + std::to_string(t.data.size()) + " bytes (shape "
                 + shape_to_string(t.shape) + ") do not fit the shared_memory_byte_size "
                 + std::to_string(shm->byte_size) + " the request gave it");
    if (auto err = shm->region->write(shm->offset, t.data.data(), t.data.size(), what))
      return err;
  }
  return {};
}

namespace {

/// An element of a tensor as a double, for ordering and printing classes.
double element_value(const tensor& t, std::size_t i) {
  const uint8_t* p = t.data.data();
  switch (t.dtype) {
    case datatype::BOOL: return p[i] ? 1 : 0;
    case datatype::UINT8: return p[i];
    case datatype::INT8: return static_cast<int8_t>(p[i]);
    case datatype::INT16: { int16_t x; std::memcpy(&x, p + 2 * i, 2); return x; }
    case datatype::INT32: { int32_t x; std::memcpy(&x, p + 4 * i, 4); return x; }
    case datatype::INT64: { int64_t x; std::memcpy(&x, p + 8 * i, 8); return static_cast<double>(x); }
    case datatype::FP16: { uint16_t x; std::memcpy(&x, p + 2 * i, 2); return half_to_float(x); }
    case datatype::FP32: { float x; std::memcpy(&x, p + 4 * i, 4); return x; }
    case datatype::FP64: { double x; std::memcpy(&x, p + 8 * i, 8); return x; }
    case datatype::BYTES: break; // (classification needs numbers: refused before)
  }
  return 0;
}

/// The output's top classes per row as "value:index[:label]" strings, and the answer's shape.
std::vector<std::string> classify(const tensor& t, const classification& c,
                                  std::vector<int64_t>& shape) {
  auto n = static_cast<std::size_t>(element_count(t.shape).value_or(0));
  std::size_t rows = c.batched && !t.shape.empty() ? static_cast<std::size_t>(t.shape[0]) : 1;
  std::size_t per_row = rows > 0 ? n / rows : 0;
  std::size_t k = std::min<std::size_t>(c.count, per_row);
  shape = c.batched && !t.shape.empty()
            ? std::vector<int64_t>{static_cast<int64_t>(rows), static_cast<int64_t>(k)}
            : std::vector<int64_t>{static_cast<int64_t>(k)};
  std::vector<std::string> out;
  out.reserve(rows * k);
  std::vector<std::size_t> order(per_row);
  for (std::size_t row = 0; row < rows; ++row) {
    auto base = row * per_row;
    for (std::size_t i = 0; i < per_row; ++i)
      order[i] = i;
    auto higher = [&](std::size_t a, std::size_t b) { // (NaN last; ties: the lower index)
      double x = element_value(t, base + a), y = element_value(t, base + b);
      if (std::isnan(x) || std::isnan(y))
        return !std::isnan(x) && std::isnan(y);
      return x > y || (x == y && a < b);
    };
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      higher);
    for (std::size_t j = 0; j < k; ++j) {
      std::string s;
      auto v = element_value(t, base + order[j]);
      if (t.dtype == datatype::FP16 || t.dtype == datatype::FP32 || t.dtype == datatype::FP64)
        append_float(s, v, t.dtype != datatype::FP64);
      else
        append_number(s, static_cast<int64_t>(v));
      if (!s.empty() && s.front() == '"') // (NaN and infinities: JSON's quoted form, unquoted)
        s = s.substr(1, s.size() - 2);
      s += ':' + std::to_string(order[j]);
      if (c.labels && order[j] < c.labels->size())
        s += ':' + (*c.labels)[order[j]];
      out.push_back(std::move(s));
    }
  }
  return out;
}

/// The response's model, id and parameters (batch, worker, cache hit, timing when asked).
void append_response_head(std::string& s, const infer_response& r, const decoded_request& req,
                          int64_t total_ns) {
  s += "{\"model_name\":";
  s += quote(r.model);
  s += ",\"model_version\":";
  s += quote(r.version);
  if (!r.client_id.empty()) {
    s += ",\"id\":";
    s += quote(r.client_id);
  }
  s += ",\"parameters\":{\"batch_size\":";
  append_number(s, r.batch_rows);
  s += ",\"batch_requests\":";
  append_number(s, r.batch_requests);
  s += ",\"worker\":";
  s += quote(r.worker);
  if (req.cache_hit)
    s += ",\"cache_hit\":true";
  if (req.timing) {
    s += ",\"timing\":{\"queue_us\":";
    append_number(s, r.queue_ns / 1000);
    s += ",\"compute_us\":";
    append_number(s, r.compute_ns / 1000);
    s += ",\"total_us\":";
    append_number(s, total_ns / 1000);
    s += '}';
  }
  s += '}';
}

/// What follows the JSON of a response: views of the output tensors sent binary, and the
/// classification answers made for it (kept here, as the views point into them).
struct binary_tail {
  std::vector<std::string_view> parts;
  std::vector<std::string> made;
};

/// An output asked for as its top classes: BYTES strings, binary (each its uint32 little-endian
/// length, then its bytes) or JSON.
void append_classified_output(std::string& s, const tensor& t, const classification& c,
                              bool want_binary, binary_tail& tail) {
  std::vector<int64_t> shape;
  auto classes = classify(t, c, shape);
  s += ",\"datatype\":\"BYTES\",\"shape\":";
  s += shape_json(shape);
  if (!want_binary) {
    s += ",\"data\":[";
    for (std::size_t j = 0; j < classes.size(); ++j)
      s += (j > 0 ? "," : "") + quote(classes[j]);
    s += "]}";
    return;
  }
  auto& bytes = tail.made.emplace_back();
  for (auto& x : classes) {
    auto n = static_cast<uint32_t>(x.size());
    for (int b = 0; b < 4; ++b)
      bytes += static_cast<char>(n >> (8 * b));
    bytes += x;
  }
  s += ",\"parameters\":{\"binary_data_size\":";
  append_number(s, bytes.size());
  s += "}}";
  tail.parts.emplace_back(bytes);
}

/// An output tensor: described where it went to shared memory, else binary or JSON data.
void append_tensor_output(std::string& s, const tensor& t, const decoded_request& req,
                          binary_tail& tail) {
  s += ",\"datatype\":\"";
  s += to_string(t.dtype);
  s += "\",\"shape\":";
  s += shape_json(t.shape);
  if (auto* shm = req.in_shm(t.name)) {
    s += ",\"parameters\":{\"shared_memory_region\":";
    s += quote(shm->region->name());
    s += ",\"shared_memory_byte_size\":";
    append_number(s, t.data.size());
    if (shm->offset > 0) {
      s += ",\"shared_memory_offset\":";
      append_number(s, shm->offset);
    }
    s += '}';
  } else if (req.want_binary(t.name)) {
    s += ",\"parameters\":{\"binary_data_size\":";
    append_number(s, t.data.size());
    s += '}';
    tail.parts.emplace_back(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  } else {
    s += ",\"data\":";
    append_json_data(s, t);
  }
  s += '}';
}

} // namespace

encoded_response encode_response(const infer_response& r, const decoded_request& req,
                                 int64_t total_ns) {
  encoded_response out;
  std::string& s = out.body;
  s.reserve(256);
  append_response_head(s, r, req, total_ns);
  s += ",\"outputs\":[";
  binary_tail tail;
  tail.made.reserve(req.classifications.size()); // (no reallocation: parts point into it)
  for (std::size_t i = 0; i < r.outputs.size(); ++i) {
    auto& t = r.outputs[i];
    s += i > 0 ? ",{\"name\":" : "{\"name\":";
    s += quote(t.name);
    auto c = std::find_if(req.classifications.begin(), req.classifications.end(),
                          [&](const classification& x) { return x.output == t.name; });
    if (c != req.classifications.end())
      append_classified_output(s, t, *c, req.want_binary(t.name), tail);
    else
      append_tensor_output(s, t, req, tail);
  }
  s += "]}";
  if (!tail.parts.empty()) {
    out.json_length = s.size();
    std::size_t total = s.size();
    for (auto b : tail.parts)
      total += b.size();
    s.reserve(total);
    for (auto b : tail.parts)
      s.append(b);
  }
  return out;
}

std::string platform_of(const model_config& m) {
  if (m.is_pipeline())
    return "ensemble"; // (as Triton calls a model made of other models' steps)
  return m.backend == "torchscript" ? "pytorch_torchscript" : m.backend;
}

std::string encode_model_config(const model_config& m) {
  auto specs = [](const std::vector<tensor_spec>& v) {
    json::array a;
    for (auto& t : v) {
      json::array dims;
      for (auto d : t.dims)
        dims.emplace_back(d);
      a.emplace_back(json::object{{"name", t.name},
                                  {"data_type", "TYPE_" + std::string(to_string(t.dtype))},
                                  {"dims", std::move(dims)}});
    }
    return a;
  };
  json::array groups;
  json::array gpus;
  bool cpu = false;
  for (auto& d : m.devices) {
    if (d.rfind("cuda:", 0) == 0)
      gpus.emplace_back(std::stoi(d.substr(5)));
    else
      cpu = true;
  }
  if (cpu)
    groups.emplace_back(json::object{{"name", m.name + "_cpu"}, {"kind", "KIND_CPU"},
                                     {"count", m.instances}});
  if (!gpus.empty())
    groups.emplace_back(json::object{{"name", m.name + "_gpu"}, {"kind", "KIND_GPU"},
                                     {"count", m.instances}, {"gpus", std::move(gpus)}});
  json::object o{{"name", m.name},
                 {"platform", platform_of(m)},
                 {"backend", m.backend == "torchscript" ? "pytorch" : m.backend},
                 {"version_policy", json::object{{"specific", json::object{{"versions",
                                                     json::array{m.version}}}}}},
                 {"max_batch_size", m.max_batch_size},
                 {"input", specs(m.inputs)},
                 {"output", specs(m.outputs)},
                 {"instance_group", std::move(groups)}};
  if (m.is_pipeline()) {
    o.erase("backend");
    o.erase("instance_group");
    json::array steps;
    for (auto& s : m.pipeline) {
      json::object in, out;
      for (auto& [k, v] : s.inputs)
        in[k] = v;
      for (auto& [k, v] : s.outputs)
        out[k] = v;
      // (A stage step has no model: Triton's field names it "stage:NAME".)
      auto name = s.is_stage() ? "stage:" + s.stage : s.model;
      steps.emplace_back(json::object{{"model_name", std::move(name)}, {"model_version", -1},
                                      {"input_map", std::move(in)},
                                      {"output_map", std::move(out)}});
    }
    o["ensemble_scheduling"] = json::object{{"step", std::move(steps)}};
  } else if (m.max_batch_size > 0) {
    json::array preferred;
    for (auto b : m.batching.preferred_batch_sizes)
      preferred.emplace_back(b);
    o["dynamic_batching"] = json::object{
      {"preferred_batch_size", std::move(preferred)},
      {"max_queue_delay_microseconds", m.batching.max_queue_delay_us},
      {"default_queue_policy", json::object{{"max_queue_size", m.batching.max_queue_size},
                                            {"default_timeout_microseconds", m.default_timeout_us},
                                            {"allow_timeout_override", true}}}};
    if (m.batching.priority_levels > 0) {
      auto& d = o["dynamic_batching"].as_object();
      d["priority_levels"] = m.batching.priority_levels;
      d["default_priority_level"] = m.batching.default_priority_level;
    }
  }
  if (m.response_cache_bytes > 0)
    o["response_cache"] = json::object{{"enable", true}};
  json::object params;
  for (auto& [k, v] : m.parameters)
    params[k] = json::object{{"string_value", v}};
  o["parameters"] = std::move(params);
  return json::serialize(o);
}

std::string encode_model_metadata(const model_config& m) {
  auto specs = [&](const std::vector<tensor_spec>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0)
        s += ',';
      std::vector<int64_t> shape;
      if (m.max_batch_size > 0)
        shape.push_back(-1);
      shape.insert(shape.end(), v[i].dims.begin(), v[i].dims.end());
      s += "{\"name\":" + quote(v[i].name) + ",\"datatype\":\"" + std::string(to_string(v[i].dtype))
           + "\",\"shape\":" + shape_json(shape) + "}";
    }
    return s + "]";
  };
  return "{\"name\":" + quote(m.name) + ",\"versions\":[" + quote(m.version)
         + "],\"platform\":" + quote(platform_of(m)) + ",\"max_batch_size\":"
         + std::to_string(m.max_batch_size) + ",\"inputs\":" + specs(m.inputs)
         + ",\"outputs\":" + specs(m.outputs) + "}";
}

std::string error_body(const std::string& message) {
  return "{\"error\":" + quote(message) + "}";
}

} // namespace actorserve::kserve
