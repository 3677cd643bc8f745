#include "net/grpc/codec.hpp"

#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_set>

#include <boost/json.hpp>
#include <google/protobuf/util/json_util.h>

#include "net/kserve/json_codec.hpp"
#include "runtime/error.hpp"

namespace actorserve::grpc_codec {

namespace {

using input_tensor = ::inference::ModelInferRequest::InferInputTensor;

caf::error bad(std::string message) {
  return make_error(errc::invalid_input, std::move(message));
}

template <class T>
void put(uint8_t*& p, T x) {
  std::memcpy(p, &x, sizeof(T));
  p += sizeof(T);
}

/// How many typed content values an input carries, over all the fields.
std::size_t content_values(const ::inference::InferTensorContents& c) {
  return static_cast<std::size_t>(c.bool_contents_size() + c.int_contents_size()
                                  + c.int64_contents_size() + c.uint_contents_size()
                                  + c.uint64_contents_size() + c.fp32_contents_size()
                                  + c.fp64_contents_size() + c.bytes_contents_size());
}

/// The contents field that holds a datatype's values: its number of values and its name.
std::pair<int, const char*> field_of(const ::inference::InferTensorContents& c, datatype dt) {
  switch (dt) {
    case datatype::BOOL: return {c.bool_contents_size(), "bool_contents"};
    case datatype::INT8:
    case datatype::INT16:
    case datatype::INT32: return {c.int_contents_size(), "int_contents"};
    case datatype::INT64: return {c.int64_contents_size(), "int64_contents"};
    case datatype::UINT8: return {c.uint_contents_size(), "uint_contents"};
    case datatype::FP32: return {c.fp32_contents_size(), "fp32_contents"};
    case datatype::FP64: return {c.fp64_contents_size(), "fp64_contents"};
    case datatype::BYTES: return {c.bytes_contents_size(), "bytes_contents"};
    case datatype::FP16: break;
  }
  return {0, "(none)"};
}

/// Writes `values` as T.
template <class T, class Values>
void put_all(const Values& values, uint8_t*& p) {
  for (auto v : values)
    put(p, static_cast<T>(v));
}

/// Writes `values` as T, each within [lo, hi]; the error names the first that is not.
template <class T, class Values>
caf::error put_in_range(const Values& values, int64_t lo, int64_t hi, const std::string& what,
                        uint8_t*& p) {
  int i = 0;
  for (auto v : values) {
    auto x = static_cast<int64_t>(v);
    if (x < lo || x > hi)
      return bad(what + ": value " + std::to_string(v) + " at " + std::to_string(i)
                 + " is out of its datatype's range");
    put(p, static_cast<T>(v));
    ++i;
  }
  return {};
}

/// The typed contents of `in` (of datatype `dt`, `count` elements) as row-major bytes.
caf::expected<std::vector<uint8_t>> typed_bytes(const input_tensor& in, datatype dt,
                                                std::size_t count) {
  const auto& c = in.contents();
  auto what = "input '" + in.name() + "' (" + std::string(to_string(dt)) + ")";
  if (dt == datatype::FP16)
    return bad(what + ": FP16 has no typed contents; send it in raw_input_contents");
  // (Checked before anything is allocated: a shape alone may claim any number of elements.)
  if (content_values(c) != count)
    return bad(what + ": its shape " + shape_to_string({in.shape().begin(), in.shape().end()})
               + " has " + std::to_string(count) + " elements, its contents "
               + std::to_string(content_values(c)) + " values");
  // (All values counted above: a field holding `count` holds them all, and no other one does.)
  auto [have, field] = field_of(c, dt);
  if (static_cast<std::size_t>(have) != count)
    return bad(what + ": expected " + std::to_string(count) + " values in contents." + field
               + " (its shape's elements) and no others, got " + std::to_string(content_values(c))
               + " in all");
  if (dt == datatype::BYTES) { // (each value one element: its length, then its bytes)
    std::vector<uint8_t> out;
    for (auto& v : c.bytes_contents())
      append_bytes_element(out, v);
    return out;
  }
  std::vector<uint8_t> out(count * element_size(dt));
  auto* p = out.data();
  caf::error err;
  using lim32 = std::numeric_limits<int32_t>;
  switch (dt) {
    case datatype::BOOL: put_all<uint8_t>(c.bool_contents(), p); break;
    case datatype::INT8: err = put_in_range<int8_t>(c.int_contents(), -128, 127, what, p); break;
    case datatype::INT16:
      err = put_in_range<int16_t>(c.int_contents(), -32768, 32767, what, p);
      break;
    case datatype::INT32:
      err = put_in_range<int32_t>(c.int_contents(), lim32::min(), lim32::max(), what, p);
      break;
    case datatype::INT64: put_all<int64_t>(c.int64_contents(), p); break;
    case datatype::UINT8: err = put_in_range<uint8_t>(c.uint_contents(), 0, 255, what, p); break;
    case datatype::FP32: put_all<float>(c.fp32_contents(), p); break;
    case datatype::FP64: put_all<double>(c.fp64_contents(), p); break;
    case datatype::FP16:
    case datatype::BYTES: break; // (above)
  }
  if (err)
    return err;
  return out;
}

/// An integer parameter (int64 or uint64) within [lo, hi].
bool int_param(const ::inference::InferParameter& p, int64_t lo, int64_t hi, int64_t& out) {
  if (p.parameter_choice_case() == ::inference::InferParameter::kInt64Param)
    out = p.int64_param();
  else if (p.parameter_choice_case() == ::inference::InferParameter::kUint64Param
           && p.uint64_param() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    out = static_cast<int64_t>(p.uint64_param());
  else
    return false;
  return out >= lo && out <= hi;
}

} // namespace

caf::expected<infer_request> decode_infer(const ::inference::ModelInferRequest& msg) {
  infer_request req;
  req.client_id = msg.id();
  for (auto& [key, value] : msg.parameters()) {
    int64_t n = 0;
    if (key == "timeout") {
      if (!int_param(value, 1, std::numeric_limits<int64_t>::max(), n))
        return bad("parameter 'timeout' must be a positive integer (microseconds)");
      req.timeout_us = n;
    } else if (key == "priority") {
      if (!int_param(value, 0, std::numeric_limits<uint32_t>::max(), n))
        return bad("parameter 'priority' must be a non-negative integer (1 = highest, 0 = the "
                   "model's default)");
      req.priority = static_cast<uint32_t>(n);
    } else if (value.parameter_choice_case() == ::inference::InferParameter::kStringParam) {
      req.parameters[key] = value.string_param(); // (for pipeline stages, e.g. images_are)
    }
    // (Other parameters, such as Triton's sequence ones, mean nothing here: ignored as over HTTP.)
  }
  if (msg.inputs_size() == 0)
    return bad("the request has no inputs");
  bool raw = msg.raw_input_contents_size() > 0;
  if (raw && msg.raw_input_contents_size() != msg.inputs_size())
    return bad("raw_input_contents has " + std::to_string(msg.raw_input_contents_size())
               + " entries for " + std::to_string(msg.inputs_size())
               + " inputs: give one per input, in their order, or none");
  std::unordered_set<std::string_view> names; // (a linear check: 40,000 inputs took 6 s)
  names.reserve(static_cast<std::size_t>(msg.inputs_size()));
  for (int i = 0; i < msg.inputs_size(); ++i) {
    const auto& in = msg.inputs(i);
    auto what = "input '" + in.name() + "'";
    if (in.name().empty())
      return bad("input " + std::to_string(i) + " has no name");
    if (!names.insert(in.name()).second)
      return bad(what + " is given twice");
    auto dt = parse_datatype(in.datatype());
    if (!dt)
      return bad(what + ": unsupported datatype '" + in.datatype() + "' (" + datatype_list + ")");
    tensor t;
    t.name = in.name();
    t.dtype = *dt;
    t.shape.assign(in.shape().begin(), in.shape().end());
    auto checked = tensor_bytes(t.shape, t.dtype); // (a multiply that cannot wrap)
    if (!checked)
      return bad(what + ": invalid shape " + shape_to_string(t.shape)
                 + " (non-negative dimensions, at most 2^40 elements in all)");
    auto bytes = static_cast<std::size_t>(*checked);
    auto count = bytes / element_size(t.dtype);
    if (raw) {
      if (in.has_contents() && content_values(in.contents()) > 0)
        return bad(what + ": has contents although the request uses raw_input_contents");
      const auto& data = msg.raw_input_contents(i);
      if (t.dtype == datatype::BYTES ? data.size() < bytes : data.size() != bytes)
        return bad(what + ": raw_input_contents[" + std::to_string(i) + "] has "
                   + std::to_string(data.size()) + " bytes, its shape "
                   + shape_to_string(t.shape) + " and datatype " + in.datatype() + " take "
                   + std::to_string(bytes));
      t.data = std::vector<uint8_t>(data.begin(), data.end());
      if (!t.consistent()) // (BYTES: its length prefixes must add up)
        return bad(what + ": raw_input_contents[" + std::to_string(i) + "] is not "
                   + std::to_string(count) + " BYTES elements, each a 4-byte little-endian "
                   "length followed by that many bytes");
    } else {
      auto data = typed_bytes(in, *dt, count);
      if (!data)
        return std::move(data.error());
      t.data = std::move(*data);
    }
    req.inputs.push_back(std::move(t));
  }
  for (const auto& out : msg.outputs()) {
    if (out.parameters().count("classification"))
      return bad("output '" + out.name() + "': classification is served over HTTP only");
    req.outputs.push_back(out.name());
  }
  return req;
}

void encode_infer(const infer_response& r, ::inference::ModelInferResponse& out) {
  out.set_model_name(r.model);
  out.set_model_version(r.version);
  out.set_id(r.client_id);
  auto& params = *out.mutable_parameters();
  params["batch_size"].set_int64_param(r.batch_rows);
  params["batch_requests"].set_int64_param(r.batch_requests);
  for (const auto& t : r.outputs) {
    auto* o = out.add_outputs();
    o->set_name(t.name);
    o->set_datatype(std::string(to_string(t.dtype)));
    for (auto d : t.shape)
      o->add_shape(d);
    out.add_raw_output_contents(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  }
}

void encode_model_metadata(const model_config& m, ::inference::ModelMetadataResponse& out) {
  out.set_name(m.name);
  out.add_versions(m.version);
  out.set_platform(kserve::platform_of(m));
  auto fill = [&](const std::vector<tensor_spec>& specs, auto add) {
    for (const auto& s : specs) {
      auto* t = add();
      t->set_name(s.name);
      t->set_datatype(std::string(to_string(s.dtype)));
      if (m.max_batch_size > 0)
        t->add_shape(-1);
      for (auto d : s.dims)
        t->add_shape(d);
    }
  };
  fill(m.inputs, [&] { return out.add_inputs(); });
  fill(m.outputs, [&] { return out.add_outputs(); });
}

namespace {

/// Fills `out` from its protobuf JSON (unknown fields ignored: the JSON may say more).
caf::error from_json(const std::string& json, google::protobuf::Message& out) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, &out, options);
  if (!status.ok())
    return make_error(errc::internal, "cannot convert to " + out.GetTypeName() + ": "
                                        + std::string(status.message()));
  return {};
}

} // namespace

caf::error encode_model_config(const model_config& m, ::inference::ModelConfigResponse& out) {
  auto json = kserve::encode_model_config(m);
  bool numeric = !m.version.empty() && m.version.size() <= 18
                 && m.version.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric) {
    auto doc = boost::json::parse(json);
    doc.as_object().erase("version_policy");
    json = boost::json::serialize(doc);
  }
  return from_json(json, *out.mutable_config());
}

caf::error decode_statistics(const std::string& json, ::inference::ModelStatisticsResponse& out) {
  return from_json(json, out);
}

} // namespace actorserve::grpc_codec
