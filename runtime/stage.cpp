#include "runtime/stage.hpp"

#include <cmath>
#include <set>

#include <boost/json.hpp>

#include "runtime/json_text.hpp"

namespace actorserve {

namespace json = boost::json;

struct stage_parameters::impl {
  json::object values;
  std::set<std::string, std::less<>> read;
  std::vector<std::string> errors;
};

namespace {

/// The value of `key`, now counted as read; nullptr when absent.
const json::value* take(stage_parameters::impl& p, std::string_view key) {
  p.read.emplace(key);
  return p.values.if_contains(key);
}

std::string describe(const json::value& v) {
  auto text = json::serialize(v);
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

} // namespace

stage_parameters::stage_parameters(std::string path, const std::string& json_text)
  : path_(std::move(path)), impl_(std::make_unique<impl>()) {
  if (json_text.empty())
    return;
  json::error_code ec;
  auto v = json::parse(json_text, ec);
  if (ec || !v.is_object())
    impl_->errors.push_back(path_ + ": expected an object, got " + json_text);
  else
    impl_->values = std::move(v.get_object());
}

stage_parameters::~stage_parameters() = default;

stage_parameters::stage_parameters(const stage_parameters& other)
  : path_(other.path_), impl_(std::make_unique<impl>(*other.impl_)) {
}

void stage_parameters::fail(std::string_view key, const std::string& what) {
  impl_->errors.push_back(path_ + "." + std::string(key) + ": " + what);
}

std::vector<std::string> stage_parameters::errors() const {
  auto out = impl_->errors;
  for (auto& kv : impl_->values)
    if (!impl_->read.count(kv.key()))
      out.push_back(path_ + "." + std::string(kv.key()) + ": not a parameter of this stage");
  return out;
}

std::string stage_parameters::string(std::string_view key, std::string fallback,
                                     const std::vector<std::string>& choices) {
  auto* v = take(*impl_, key);
  if (!v)
    return fallback;
  if (!v->is_string()) {
    fail(key, "expected a string, got " + describe(*v));
    return fallback;
  }
  std::string s(v->get_string());
  if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end()) {
    std::string list;
    for (std::size_t i = 0; i < choices.size(); ++i)
      list += (i ? (i + 1 == choices.size() ? " or \"" : ", \"") : "\"") + choices[i] + "\"";
    fail(key, "expected " + list + ", got \"" + s + "\"");
    return fallback;
  }
  return s;
}

int64_t stage_parameters::integer(std::string_view key, int64_t fallback, int64_t lo,
                                  int64_t hi) {
  auto* v = take(*impl_, key);
  if (!v)
    return fallback;
  int64_t x = 0;
  if (v->is_int64())
    x = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(hi))
    x = static_cast<int64_t>(v->get_uint64());
  else {
    fail(key, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi)
                + "], got " + describe(*v));
    return fallback;
  }
  if (x < lo || x > hi) {
    fail(key, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi)
                + "], got " + std::to_string(x));
    return fallback;
  }
  return x;
}

double stage_parameters::number(std::string_view key, double fallback, double lo, double hi) {
  auto* v = take(*impl_, key);
  if (!v)
    return fallback;
  if (!v->is_number() || !(v->to_number<double>() >= lo && v->to_number<double>() <= hi)) {
    fail(key, "expected a number in [" + json::serialize(json::value(lo)) + ", "
                + json::serialize(json::value(hi)) + "], got " + describe(*v));
    return fallback;
  }
  return v->to_number<double>();
}

bool stage_parameters::boolean(std::string_view key, bool fallback) {
  auto* v = take(*impl_, key);
  if (!v)
    return fallback;
  if (!v->is_bool()) {
    fail(key, "expected true or false, got " + describe(*v));
    return fallback;
  }
  return v->get_bool();
}

std::vector<std::string> stage_parameters::strings(std::string_view key) {
  auto* v = take(*impl_, key);
  std::vector<std::string> out;
  if (!v)
    return out;
  if (!v->is_array()) {
    fail(key, "expected an array of strings, got " + describe(*v));
    return out;
  }
  for (auto& e : v->get_array()) {
    if (!e.is_string()) {
      fail(key, "expected an array of strings, got " + describe(e) + " in it");
      return {};
    }
    out.emplace_back(e.get_string());
  }
  return out;
}

std::vector<double> stage_parameters::numbers(std::string_view key, std::vector<double> fallback,
                                              std::size_t n) {
  auto* v = take(*impl_, key);
  if (!v)
    return fallback;
  std::vector<double> out;
  if (v->is_array())
    for (auto& e : v->get_array())
      if (e.is_number() && std::isfinite(e.to_number<double>()))
        out.push_back(e.to_number<double>());
  if (!v->is_array() || out.size() != v->get_array().size() || out.size() != n) {
    fail(key, "expected an array of " + std::to_string(n) + " numbers, got " + describe(*v));
    return fallback;
  }
  return out;
}

stage_registry& stage_registry::global() {
  static stage_registry instance;
  return instance;
}

bool stage_registry::add(const std::string& name, stage_definition def) {
  std::lock_guard<std::mutex> guard{mtx_};
  return stages_.emplace(name, std::make_unique<stage_definition>(std::move(def))).second;
}

const stage_definition* stage_registry::find(const std::string& name) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = stages_.find(name);
  return it == stages_.end() ? nullptr : it->second.get(); // (never removed: stays valid)
}

std::vector<std::string> stage_registry::names() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<std::string> out;
  for (auto& kv : stages_)
    out.push_back(kv.first);
  return out;
}

stage_registrar::stage_registrar(const std::string& name, stage_definition def) {
  stage_registry::global().add(name, std::move(def));
}

int64_t item_count(const stage_input& in) {
  if (in.tensors.empty() || in.tensors.front().shape.empty())
    return in.tensors.empty() ? 0 : 1;
  return in.tensors.front().shape.front();
}

std::vector<tensor> split_items(const tensor& t) {
  std::vector<tensor> out;
  if (t.shape.empty() || !t.consistent())
    return out;
  auto n = static_cast<std::size_t>(t.shape.front());
  tensor item;
  item.name = t.name;
  item.dtype = t.dtype;
  item.shape = t.shape;
  item.shape.front() = 1;
  auto per_item = static_cast<std::size_t>(*element_count(item.shape));
  out.reserve(n);
  std::size_t at = 0;
  if (t.dtype == datatype::BYTES) {
    auto elements = *bytes_elements(t.view(), static_cast<int64_t>(n * per_item));
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t len = 0;
      for (std::size_t k = 0; k < per_item; ++k)
        len += 4 + elements[i * per_item + k].size();
      item.data = t.data.slice(at, len);
      at += len;
      out.push_back(item);
    }
    return out;
  }
  auto bytes = per_item * element_size(t.dtype);
  for (std::size_t i = 0; i < n; ++i, at += bytes) {
    item.data = t.data.slice(at, bytes);
    out.push_back(item);
  }
  return out;
}

tensor join_items(const tensor_spec& spec, const std::vector<const byte_buffer*>& items) {
  std::size_t total = 0;
  for (auto* b : items)
    total += b->size();
  std::vector<uint8_t> bytes;
  bytes.reserve(total);
  for (auto* b : items)
    bytes.insert(bytes.end(), b->begin(), b->end());
  tensor t;
  t.name = spec.name;
  t.dtype = spec.dtype;
  t.shape = spec.dims;
  t.shape.insert(t.shape.begin(), static_cast<int64_t>(items.size()));
  t.data = std::move(bytes);
  return t;
}

std::string_view only_element(const tensor& t) {
  if (t.dtype != datatype::BYTES || t.data.size() < 4)
    return {};
  auto e = bytes_elements(t.view(), 1);
  return e ? e->front() : std::string_view{};
}

} // namespace actorserve
