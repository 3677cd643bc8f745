#include "runtime/config.hpp"
#include "runtime/file_text.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <system_error>

#include <boost/json.hpp>

#include "runtime/error.hpp"
#include "runtime/stage.hpp"
#include "runtime/supervision_policy.hpp"

namespace json = boost::json;

namespace actorserve {

std::vector<int64_t> model_config::batched_shape(const tensor_spec& spec, int64_t rows,
                                                 int64_t fill) const {
  std::vector<int64_t> shape;
  if (max_batch_size > 0)
    shape.push_back(rows);
  for (auto d : spec.dims)
    shape.push_back(d < 0 ? fill : d);
  return shape;
}

namespace {

/// The element of `xs` whose `name` is `name`, or nullptr.
template <class T>
const T* find_named(const std::vector<T>& xs, const std::string& name) {
  auto it = std::find_if(xs.begin(), xs.end(), [&](const T& x) { return x.name == name; });
  return it == xs.end() ? nullptr : &*it;
}

} // namespace

const tensor_spec* model_config::find_input(const std::string& name) const {
  return find_named(inputs, name);
}

const tensor_spec* model_config::find_output(const std::string& name) const {
  return find_named(outputs, name);
}

const model_config* deployment_config::find_model(const std::string& name) const {
  return find_named(models, name);
}

namespace {

std::string describe(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return v.get_bool() ? "true" : "false";
    case json::kind::string: return json::serialize(v);
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
    default: return json::serialize(v);
  }
}

std::string format_number(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15)
    return std::to_string(static_cast<int64_t>(x));
  return json::serialize(json::value(x));
}

/// Resolves a file the deployment names against the deployment file's folder; what is wrong with
/// it (no such file, a folder, a name the system refuses, such as one too long), or nothing.
std::optional<std::string> resolve_file(std::string& file, const std::string& base_dir) {
  namespace fs = std::filesystem;
  if (file.empty())
    return std::nullopt;
  if (fs::path(file).is_relative() && !base_dir.empty())
    file = (fs::path(base_dir) / file).lexically_normal().string();
  std::error_code ec; // (the throwing overloads ended the program on a name too long)
  auto st = fs::status(file, ec);
  if (st.type() == fs::file_type::not_found)
    return "no such file: \"" + file + "\"";
  if (ec)
    return "cannot use \"" + file + "\": " + ec.message();
  if (st.type() == fs::file_type::directory)
    return "\"" + file + "\" is a folder, not a file";
  return std::nullopt;
}

/// The names of the closed options, as the deployment file writes them.
const std::pair<std::string_view, cluster_role> cluster_roles[] = {
  {"both", cluster_role::both}, {"front", cluster_role::front}, {"worker", cluster_role::worker}};
const std::pair<std::string_view, caf_scheduler> caf_schedulers[] = {
  {"sharing", caf_scheduler::sharing}, {"stealing", caf_scheduler::stealing}};
const std::pair<std::string_view, gpu_precision> gpu_precisions[] = {
  {"fp32", gpu_precision::fp32}, {"fp16", gpu_precision::fp16}, {"bf16", gpu_precision::bf16}};
const std::pair<std::string_view, isolation_mode> isolation_modes[] = {
  {"none", isolation_mode::none}, {"process", isolation_mode::process}};

template <class E, std::size_t N>
std::string_view name_in(const std::pair<std::string_view, E> (&options)[N], E value) {
  for (auto& [name, v] : options)
    if (v == value)
      return name;
  return "?";
}

/// What is wrong with a value that must not be below another key's: "must be >= OTHER (bound),
/// got value".
std::string below_text(const char* other, uint64_t bound, uint64_t value) {
  return "must be >= " + std::string(other) + " (" + std::to_string(bound) + "), got "
         + std::to_string(value);
}

/// Walks one JSON object, checking keys and types, and collects errors with their paths.
class reader {
public:
  reader(std::vector<std::string>& errors, std::string path, const json::value& v)
    : errors_(errors), path_(std::move(path)), obj_(nullptr) {
    if (v.is_object())
      obj_ = &v.get_object();
    else
      fail(path_, "expected an object, got " + describe(v));
  }

  ~reader() {
    if (!obj_)
      return;
    for (auto& kv : *obj_)
      if (!seen_.count(std::string(kv.key())))
        fail(sub(kv.key()), "unknown key");
  }

  bool ok() const { return obj_ != nullptr; }
  const json::object* object_value() const { return obj_; }
  bool has(std::string_view key) const { return obj_ && obj_->contains(key); }

  std::string sub(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  const json::value* get(std::string_view key, bool required = false) {
    seen_.insert(std::string(key));
    if (!obj_)
      return nullptr;
    auto it = obj_->find(key);
    if (it == obj_->end()) {
      if (required)
        fail(sub(key), "required key is missing");
      return nullptr;
    }
    return &it->value();
  }

  void fail(const std::string& path, const std::string& what) {
    errors_.push_back(path + ": " + what);
  }

  void string(std::string_view key, std::string& out, bool required = false) {
    if (auto v = get(key, required)) {
      if (v->is_string())
        out = std::string(v->get_string());
      else
        fail(sub(key), "expected a string, got " + describe(*v));
    }
  }

  /// One of a closed set of names, each standing for a value of `E`; the error lists them.
  template <class E, std::size_t N>
  void choice(std::string_view key, E& out, const std::pair<std::string_view, E> (&options)[N]) {
    auto v = get(key);
    if (!v)
      return;
    if (!v->is_string())
      return fail(sub(key), "expected a string, got " + describe(*v));
    for (auto& [name, value] : options)
      if (v->get_string() == name) {
        out = value;
        return;
      }
    std::string expected;
    for (std::size_t i = 0; i < N; ++i)
      expected += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + "\""
                  + std::string(options[i].first) + "\"";
    fail(sub(key), "expected " + expected + ", got \"" + std::string(v->get_string()) + "\"");
  }

  void boolean(std::string_view key, bool& out) {
    if (auto v = get(key)) {
      if (v->is_bool())
        out = v->get_bool();
      else
        fail(sub(key), "expected true or false, got " + describe(*v));
    }
  }

  template <class T>
  void integer(std::string_view key, T& out, int64_t min, int64_t max = -1,
               bool required = false) {
    if (auto v = get(key, required))
      integer_value(sub(key), *v, out, min, max);
  }

  template <class T>
  bool integer_value(const std::string& path, const json::value& v, T& out, int64_t min,
                     int64_t max = -1) {
    if (max < 0)
      max = static_cast<int64_t>(std::min<uint64_t>(std::numeric_limits<T>::max(),
                                                     std::numeric_limits<int64_t>::max()));
    int64_t x;
    if (v.is_int64())
      x = v.get_int64();
    else if (v.is_uint64() && v.get_uint64() <= uint64_t(std::numeric_limits<int64_t>::max()))
      x = static_cast<int64_t>(v.get_uint64());
    else {
      fail(path, "expected an integer, got " + describe(v));
      return false;
    }
    if (x < min) {
      fail(path, "must be >= " + std::to_string(min) + ", got " + std::to_string(x));
      return false;
    }
    if (x > max) {
      fail(path, "must be <= " + std::to_string(max) + ", got " + std::to_string(x));
      return false;
    }
    out = static_cast<T>(x);
    return true;
  }

  void number(std::string_view key, double& out, double min) {
    if (auto v = get(key)) {
      if (!v->is_number()) {
        fail(sub(key), "expected a number, got " + describe(*v));
        return;
      }
      double x = v->to_number<double>();
      if (!(x >= min))
        fail(sub(key), "must be >= " + json::serialize(json::value(min)) + ", got "
                         + json::serialize(*v));
      else
        out = x;
    }
  }

  template <class T>
  void integer_list(std::string_view key, std::vector<T>& out, int64_t min) {
    auto v = get(key);
    if (!v)
      return;
    if (!v->is_array()) {
      fail(sub(key), "expected an array of integers, got " + describe(*v));
      return;
    }
    out.clear();
    auto& arr = v->get_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
      T x{};
      if (integer_value(sub(key) + "[" + std::to_string(i) + "]", arr[i], x, min))
        out.push_back(x);
    }
  }

  /// Reads an array of exactly `count` numbers, each > `above`.
  void number_list(std::string_view key, std::vector<double>& out, std::size_t count,
                   double above) {
    auto v = get(key);
    if (!v)
      return;
    if (!v->is_array() || v->get_array().size() != count) {
      fail(sub(key), "expected an array of " + std::to_string(count) + " numbers, got "
                       + json::serialize(*v));
      return;
    }
    std::vector<double> xs;
    auto& arr = v->get_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
      auto p = sub(key) + "[" + std::to_string(i) + "]";
      if (!arr[i].is_number())
        fail(p, "expected a number, got " + describe(arr[i]));
      else if (!(arr[i].to_number<double>() > above))
        fail(p, "must be > " + format_number(above) + ", got " + json::serialize(arr[i]));
      else
        xs.push_back(arr[i].to_number<double>());
    }
    if (xs.size() == count)
      out = std::move(xs);
  }

  /// Calls `fn(sub_reader)` for the object at `key`, when present; the sub-reader reports its
  /// unknown keys when `fn` returns.
  void object(std::string_view key, const std::function<void(reader&)>& fn) {
    if (auto v = get(key)) {
      reader sub_reader(errors_, sub(key), *v);
      if (sub_reader.ok())
        fn(sub_reader);
    }
  }

  /// Calls `fn(path, element)` for each element of the array at `key`.
  void array(std::string_view key, bool required,
             const std::function<void(const std::string&, const json::value&)>& fn) {
    auto v = get(key, required);
    if (!v)
      return;
    if (!v->is_array()) {
      fail(sub(key), "expected an array, got " + describe(*v));
      return;
    }
    auto& arr = v->get_array();
    for (std::size_t i = 0; i < arr.size(); ++i)
      fn(sub(key) + "[" + std::to_string(i) + "]", arr[i]);
  }

  /// An object of strings at `key` (names to values), when present.
  void string_map(std::string_view key, std::map<std::string, std::string>& out) {
    auto v = get(key);
    if (!v)
      return;
    if (!v->is_object())
      return fail(sub(key), "expected an object of strings, got " + describe(*v));
    for (auto& kv : v->get_object()) {
      if (!kv.value().is_string())
        fail(sub(key) + "." + std::string(kv.key()),
             "expected a string, got " + describe(kv.value()));
      else
        out[std::string(kv.key())] = std::string(kv.value().get_string());
    }
  }

  /// Records "must be >= OTHER (bound), got value" at `path` when value < bound.
  void not_below(const std::string& path, uint64_t value, const char* other, uint64_t bound) {
    if (value < bound)
      fail(path, below_text(other, bound, value));
  }

  std::vector<std::string>& errors() { return errors_; }

private:
  std::vector<std::string>& errors_;
  std::string path_;
  const json::object* obj_;
  std::set<std::string> seen_;
};

/// Reads one element of "server.queues" (checked against the models by check_queues).
void read_queue(reader& q, queue_config& c) {
  q.string("name", c.name);
  q.string("stream", c.stream, true);
  if (q.has("stream") && c.stream.empty())
    q.fail(q.sub("stream"), "must not be empty");
  q.object("redis", [&](reader& r) {
    r.string("host", c.redis_host);
    if (c.redis_host.empty())
      r.fail(r.sub("host"), "must not be empty");
    r.integer("port", c.redis_port, 1, 65535);
    r.integer("db", c.redis_db, 0, 1'000'000);
    r.string("username", c.redis_username);
    r.string("password_env", c.redis_password_env);
    if (!c.redis_username.empty() && c.redis_password_env.empty())
      r.fail(r.sub("username"), "a username needs password_env (the variable with its password)");
  });
  q.string("group", c.group);
  if (c.group.empty())
    q.fail(q.sub("group"), "must not be empty");
  q.string("consumer", c.consumer);
  q.string("model", c.model);
  q.string("reply_stream", c.reply_stream);
  q.array("reply_to_prefixes", false, [&](const std::string& path, const json::value& v) {
    if (!v.is_string())
      q.fail(path, "expected a string, got " + describe(v));
    else
      c.reply_to_prefixes.emplace_back(v.get_string());
  });
  q.string("dead_letter_stream", c.dead_letter_stream);
  q.integer("reply_maxlen", c.reply_maxlen, 0);
  q.integer("max_in_flight", c.max_in_flight, 1, 1'000'000);
  q.integer("max_entry_bytes", c.max_entry_bytes, 1024);
  q.integer("claim_idle_ms", c.claim_idle_ms, 1000);
  q.integer("max_deliveries", c.max_deliveries, 1, 1000);
  q.boolean("delete_answered", c.delete_answered);
  q.integer("connect_timeout_ms", c.connect_timeout_ms, 1, 600'000);
  q.integer("reconnect_max_ms", c.reconnect_max_ms, 100, 3'600'000);
  if (c.name.empty())
    c.name = c.stream;
  if (c.reply_stream.empty() && !c.stream.empty())
    c.reply_stream = c.stream + ":replies";
  if (c.reply_stream == c.stream && !c.stream.empty())
    q.fail(q.sub("reply_stream"), "must differ from the stream requests come from");
  if (c.reply_to_prefixes.empty())
    c.reply_to_prefixes.push_back(c.reply_stream);
  if (!c.dead_letter_stream.empty() && c.dead_letter_stream == c.stream)
    q.fail(q.sub("dead_letter_stream"), "must differ from the stream requests come from");
}

/// A front's "tls" object (`path` names it in errors): the files must exist.
void read_server_tls(reader& r, const std::string& path, server_tls& tls,
                     const std::string& base_dir, bool reloads) {
  r.object("tls", [&](reader& t) {
    t.string("certificate", tls.certificate, true);
    t.string("key", tls.key, true);
    t.string("client_ca", tls.client_ca);
    if (reloads) // (the HTTP front's; gRPC's credentials are fixed at start)
      t.integer("reload_interval_ms", tls.reload_interval_ms, 0, 86'400'000);
    for (auto* f : {&tls.certificate, &tls.key, &tls.client_ca})
      if (auto wrong = resolve_file(*f, base_dir))
        t.fail(path, *wrong);
  });
}

/// Reads the "server.http" object.
void read_http(reader& r, http_config& h, const std::string& base_dir) {
  r.string("address", h.address);
  r.integer("port", h.port, 0, 65535);
  r.integer("io_threads", h.io_threads, 1, 256);
  r.integer("max_body_bytes", h.max_body_bytes, 1024);
  r.integer("header_timeout_ms", h.header_timeout_ms, 1);
  r.integer("body_timeout_ms", h.body_timeout_ms, 1);
  r.integer("min_body_bytes_per_s", h.min_body_bytes_per_s, 0);
  r.integer("body_grace_ms", h.body_grace_ms, 0);
  r.integer("idle_timeout_ms", h.idle_timeout_ms, 1);
  r.integer("max_connections", h.max_connections, 0);
  r.integer("max_connections_per_client", h.max_connections_per_client, 0);
  r.integer("drain_timeout_ms", h.drain_timeout_ms, 0, 3'600'000);
  r.integer("max_inflight_body_bytes", h.max_inflight_body_bytes, 1024);
  r.not_below("server.http.max_inflight_body_bytes", h.max_inflight_body_bytes, "max_body_bytes",
              h.max_body_bytes);
  r.integer("compression_level", h.compression_level, 0, 9);
  r.integer("compression_min_bytes", h.compression_min_bytes, 0);
  r.boolean("allow_shared_memory", h.allow_shared_memory);
  r.boolean("shared_memory_owner_check", h.shared_memory_owner_check);
  r.array("shared_memory_key_prefixes", false, [&](const std::string& path, const json::value& v) {
    if (!v.is_string() || v.get_string().empty() || v.get_string()[0] != '/')
      r.fail(path, "expected the start of a shared memory name (\"/...\"), got " + describe(v));
    else
      h.shared_memory_key_prefixes.emplace_back(v.get_string());
  });
  r.integer("model_load_wait_ms", h.model_load_wait_ms, 1, 3'600'000);
  r.array("allowed_origins", false, [&](const std::string& path, const json::value& v) {
    if (!v.is_string() || v.get_string().find("://") == json::string::npos)
      r.fail(path, "expected an origin such as \"https://console.example.com\", got "
                     + describe(v));
    else
      h.allowed_origins.emplace_back(v.get_string());
  });
  read_server_tls(r, "server.http.tls", h.tls, base_dir, true);
}

/// Reads one element of "server.restricted_apis": {"groups": [...], "header", "value" or
/// "value_env"}. A group may be in one element only (checked by the caller).
void read_restricted_api(reader& r, const std::string& path, api_restriction& out) {
  r.array("groups", true, [&](const std::string& p, const json::value& v) {
    auto g = v.is_string() ? parse_api_group(std::string_view(v.get_string())) : std::nullopt;
    if (!g)
      r.fail(p, std::string("expected one of ") + api_groups_text + ", got " + describe(v));
    else
      out.groups.push_back(*g);
  });
  r.string("header", out.header, true);
  std::transform(out.header.begin(), out.header.end(), out.header.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  bool token = !out.header.empty() && std::all_of(out.header.begin(), out.header.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (r.has("header") && !token)
    r.fail(r.sub("header"), "expected a header name (letters, digits, '-', '_', '.'), got \""
                              + out.header + "\"");
  std::string env;
  r.string("value", out.value);
  r.string("value_env", env);
  if (r.has("value") == r.has("value_env"))
    r.fail(path, "give the header's value as \"value\" or as \"value_env\" (the environment "
                 "variable that holds it), one of them");
  else if (!env.empty()) {
    const char* v = std::getenv(env.c_str());
    if (!v || !*v)
      r.fail(r.sub("value_env"), "the environment variable " + env + " is not set");
    else
      out.value = v;
  }
  if (r.has("value") && out.value.empty())
    r.fail(r.sub("value"), "must not be empty");
}

/// Reads "server.cluster".
void read_cluster(reader& c, cluster_config& cl, const std::string& base_dir) {
  c.choice("role", cl.role, cluster_roles);
  c.string("node_name", cl.node_name);
  c.object("listen", [&](reader& l) {
    l.string("address", cl.listen_address);
    l.integer("port", cl.listen_port, 0, 65535);
  });
  c.array("seeds", false, [&](const std::string& p, const json::value& v) {
    auto text = v.is_string() ? std::string(v.get_string()) : std::string();
    auto colon = text.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < text.size()
              && std::all_of(text.begin() + static_cast<std::ptrdiff_t>(colon) + 1, text.end(),
                             [](char ch) { return ch >= '0' && ch <= '9'; });
    if (!ok)
      c.fail(p, "expected \"host:port\", got " + describe(v));
    else
      cl.seeds.push_back(text);
  });
  c.integer("heartbeat_ms", cl.heartbeat_ms, 10, 600'000);
  c.integer("timeout_ms", cl.timeout_ms, 10, 3'600'000);
  c.integer("reconnect_initial_ms", cl.reconnect_initial_ms, 1, 600'000);
  c.integer("reconnect_max_ms", cl.reconnect_max_ms, 1, 3'600'000);
  c.integer("drain_timeout_ms", cl.drain_timeout_ms, 0, 3'600'000);
  c.boolean("insecure", cl.insecure);
  c.object("tls", [&](reader& t) {
    t.string("certificate", cl.tls_certificate, true);
    t.string("key", cl.tls_key, true);
    t.string("ca", cl.tls_ca, true);
    for (auto* f : {&cl.tls_certificate, &cl.tls_key, &cl.tls_ca})
      if (auto wrong = resolve_file(*f, base_dir))
        t.fail("server.cluster.tls", *wrong);
  });
  if (cl.role == cluster_role::worker && cl.seeds.empty())
    c.fail("server.cluster.seeds", "a worker node needs at least one seed (a front node)");
  if (cl.role == cluster_role::front && cl.listen_port == 0)
    c.fail("server.cluster.listen.port", "a front node needs a port for worker nodes to join");
}

/// Reads "server.restricted_apis" (each group in one element at most).
void read_restricted_apis(reader& r, std::vector<api_restriction>& out) {
  r.array("restricted_apis", false, [&](const std::string& path, const json::value& v) {
    reader a(r.errors(), path, v);
    if (!a.ok())
      return;
    api_restriction x;
    read_restricted_api(a, path, x);
    for (auto g : x.groups)
      if (restriction_of(out, g))
        a.fail(path + ".groups", std::string("group \"") + to_string(g)
                                   + "\" is restricted twice; name each group once");
    out.push_back(std::move(x));
  });
}

/// The keys of a supervisor: intensity, backoff, strategy, children's shutdown time.
void read_restart(reader& rr, const std::string& path, restart_config& c) {
  rr.integer("max_restarts", c.max_restarts, 0, 1'000'000);
  rr.integer("period_s", c.period_s, 1, 86'400);
  rr.integer("backoff_initial_ms", c.backoff_initial_ms, 0, 3'600'000);
  rr.integer("backoff_max_ms", c.backoff_max_ms, 0, 3'600'000);
  rr.number("backoff_factor", c.backoff_factor, 1.0);
  rr.number("backoff_jitter", c.backoff_jitter, 0.0);
  if (c.backoff_jitter > 1.0)
    rr.fail(path + ".backoff_jitter",
            "must be <= 1, got " + json::serialize(json::value(c.backoff_jitter)));
  rr.not_below(path + ".backoff_max_ms", c.backoff_max_ms, "backoff_initial_ms",
               c.backoff_initial_ms);
  rr.choice("strategy", c.strategy, restart_strategy_names);
  rr.integer("shutdown_ms", c.shutdown_ms, 1, 3'600'000);
}

/// Reads "server.tracing": OpenTelemetry spans exported over OTLP (on when the object is given).
void read_tracing(reader& t, tracing_config& c) {
  c.enabled = true;
  t.boolean("enabled", c.enabled);
  t.string("protocol", c.protocol);
  if (c.protocol != "http/protobuf" && c.protocol != "grpc")
    t.fail("server.tracing.protocol",
           "expected \"http/protobuf\" or \"grpc\", got \"" + c.protocol + "\"");
  if (c.protocol == "grpc" && !t.has("endpoint"))
    c.endpoint = "http://127.0.0.1:4317";
  t.string("endpoint", c.endpoint);
  if (c.endpoint.rfind("http://", 0) != 0)
    t.fail("server.tracing.endpoint",
           "expected an http:// URL (the exporter speaks plain text: run the collector beside the "
           "node), got \"" + c.endpoint + "\"");
  t.string_map("headers", c.headers);
  t.string("service_name", c.service_name);
  if (c.service_name.empty())
    t.fail("server.tracing.service_name", "must not be empty");
  t.string_map("resource_attributes", c.resource_attributes);
  t.number("sample_ratio", c.sample_ratio, 0.0);
  if (c.sample_ratio > 1.0)
    t.fail("server.tracing.sample_ratio",
           "must be <= 1, got " + json::serialize(json::value(c.sample_ratio)));
  t.boolean("parent_based", c.parent_based);
  t.boolean("sample_errors", c.sample_errors);
  t.integer("sample_slower_than_ms", c.sample_slower_than_ms, 0, 86'400'000);
  t.integer("max_queue_spans", c.max_queue_spans, 1, 10'000'000);
  t.integer("max_export_batch", c.max_export_batch, 1, 100'000);
  t.integer("export_interval_ms", c.export_interval_ms, 1, 3'600'000);
  t.integer("export_timeout_ms", c.export_timeout_ms, 1, 600'000);
}

/// Reads the "server" object.
void read_server(reader& r, server_config& s, const std::string& base_dir) {
  r.object("http", [&](reader& h) { read_http(h, s.http, base_dir); });
  r.object("grpc", [&](reader& g) {
    s.grpc.enabled = true;
    g.boolean("enabled", s.grpc.enabled);
    g.string("address", s.grpc.address);
    g.integer("port", s.grpc.port, 0, 65535);
    g.integer("max_message_bytes", s.grpc.max_message_bytes, 1024, 2'147'483'647);
    g.integer("max_concurrent_streams", s.grpc.max_concurrent_streams, 1, 2'147'483'647);
    g.integer("max_metadata_bytes", s.grpc.max_metadata_bytes, 1024, 2'147'483'647);
    g.integer("memory_quota_bytes", s.grpc.memory_quota_bytes, 1ull << 20);
    g.integer("max_stream_pending", s.grpc.max_stream_pending, 1, 1'000'000);
    read_server_tls(g, "server.grpc.tls", s.grpc.tls, base_dir, false);
  });
  r.integer("scheduler_threads", s.scheduler_threads, 0, 1024);
  r.choice("scheduler_policy", s.scheduler_policy, caf_schedulers);
  r.string("log_level", s.log_level);
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "off"};
  if (!levels.count(s.log_level))
    r.fail("server.log_level",
           "expected one of trace, debug, info, warn, error, off, got \"" + s.log_level + "\"");
  r.string("log_format", s.log_format);
  if (s.log_format != "text" && s.log_format != "json")
    r.fail("server.log_format", "expected \"text\" or \"json\", got \"" + s.log_format + "\"");
  r.boolean("fault_injection", s.fault_injection);
  r.object("cluster", [&](reader& c) { read_cluster(c, s.cluster, base_dir); });
  r.object("tracing", [&](reader& t) { read_tracing(t, s.tracing); });
  r.array("queues", false, [&](const std::string& path, const json::value& v) {
    reader q(r.errors(), path, v);
    if (!q.ok())
      return;
    queue_config c;
    read_queue(q, c);
    s.queues.push_back(std::move(c));
  });
  read_restricted_apis(r, s.restricted_apis);
  r.boolean("model_control", s.model_control);
  r.object("supervision", [&](reader& sv) {
    read_restart(sv, "server.supervision", s.supervision.restart);
    sv.choice("model_restart", s.supervision.model_restart, restart_type_names);
    sv.integer("model_cooldown_ms", s.supervision.model_cooldown_ms, 0, 86'400'000);
    sv.integer("model_cooldown_max_ms", s.supervision.model_cooldown_max_ms, 0, 86'400'000);
    sv.not_below("server.supervision.model_cooldown_max_ms", s.supervision.model_cooldown_max_ms,
                 "model_cooldown_ms", s.supervision.model_cooldown_ms);
  });
}

/// A labels file's lines (without their line ends), or what is wrong with it.
std::optional<std::string> read_labels(const std::string& file, std::vector<std::string>& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return "cannot read \"" + file + "\"";
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    out.push_back(std::move(line));
    if (out.size() > 10'000'000)
      return "\"" + file + "\" has more than 10,000,000 lines";
  }
  return std::nullopt;
}

/// `base_dir`: outputs, which may name a labels file (resolved against it); null for inputs.
void read_tensor_specs(reader& m, std::string_view key, std::vector<tensor_spec>& out,
                       const std::string* base_dir = nullptr) {
  m.array(key, true, [&](const std::string& path, const json::value& v) {
    reader r(m.errors(), path, v);
    if (!r.ok())
      return;
    tensor_spec spec;
    r.string("name", spec.name, true);
    if (base_dir) {
      r.string("labels", spec.labels_file);
      if (!spec.labels_file.empty()) {
        auto wrong = resolve_file(spec.labels_file, *base_dir);
        if (!wrong)
          wrong = read_labels(spec.labels_file, spec.labels);
        if (wrong)
          r.fail(path + ".labels", *wrong);
      }
    }
    std::string dt;
    r.string("datatype", dt, true);
    if (!dt.empty()) {
      if (auto parsed = parse_datatype(dt))
        spec.dtype = *parsed;
      else
        r.fail(path + ".datatype",
               std::string("expected one of ") + datatype_list + ", got \"" + dt + "\"");
    }
    if (auto dims = r.get("dims", true)) {
      if (!dims->is_array()) {
        r.fail(path + ".dims", "expected an array of integers, got " + describe(*dims));
      } else {
        auto& arr = dims->get_array();
        for (std::size_t i = 0; i < arr.size(); ++i) {
          int64_t d = 0;
          auto dpath = path + ".dims[" + std::to_string(i) + "]";
          if (r.integer_value(dpath, arr[i], d, -1)) {
            if (d == 0)
              r.fail(dpath, "must be -1 (variable) or >= 1, got 0");
            else
              spec.dims.push_back(d);
          }
        }
      }
    }
    if (!spec.name.empty() && find_named(out, spec.name))
      r.fail(path + ".name", "duplicate name \"" + spec.name + "\"");
    out.push_back(std::move(spec));
  });
  if (auto v = m.get(key); v && v->is_array() && v->get_array().empty())
    m.fail(m.sub(key), "must list at least one tensor");
}

bool valid_device(const std::string& d) {
  if (d == "cpu" || d == "all")
    return true;
  if (d.rfind("cuda:", 0) != 0 || d.size() == 5 || d.size() > 8)
    return false;
  return std::all_of(d.begin() + 5, d.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void read_gpu(reader& r, const std::string& path, model_config& m) {
  r.object("gpu", [&](reader& g) {
    g.choice("precision", m.gpu.precision, gpu_precisions);
    g.boolean("channels_last", m.gpu.channels_last);
    g.boolean("cudnn_benchmark", m.gpu.cudnn_benchmark);
    g.boolean("cuda_graphs", m.gpu.cuda_graphs);
    g.integer("inflight_batches", m.gpu.inflight_batches, 1, 4);
    g.integer_list("batch_buckets", m.gpu.batch_buckets, 1);
    auto& b = m.gpu.batch_buckets;
    for (std::size_t i = 0; i < b.size(); ++i)
      if (b[i] > m.max_batch_size)
        g.fail(path + ".gpu.batch_buckets[" + std::to_string(i) + "]",
               "must be <= max_batch_size (" + std::to_string(m.max_batch_size) + "), got "
                 + std::to_string(b[i]));
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
  });
}

void read_preprocess(reader& r, const std::string& path, model_config& m) {
  r.object("preprocess", [&](reader& p) {
    auto& pp = m.preprocess;
    pp.enabled = true;
    p.string("input", pp.input);
    if (pp.input.empty() && !m.inputs.empty())
      pp.input = m.inputs.front().name;
    if (auto rv = p.get("resize")) {
      std::vector<uint32_t> hw;
      p.integer_list("resize", hw, 1);
      if (!rv->is_array() || rv->get_array().size() != 2)
        p.fail(path + ".preprocess.resize", "expected [height, width], got " + json::serialize(*rv));
      else if (hw.size() == 2) {
        pp.resize_height = hw[0];
        pp.resize_width = hw[1];
      }
    }
    p.number("scale", pp.scale, 0.0);
    p.number_list("mean", pp.mean, 3, -1e30);
    p.number_list("std", pp.stdev, 3, 0.0);
    auto* in = m.find_input(pp.input);
    auto ipath = path + ".preprocess.input";
    if (m.max_batch_size == 0) {
      p.fail(path + ".preprocess", "needs a batching model (max_batch_size >= 1)");
    } else if (!in) {
      p.fail(ipath, "names no declared input: \"" + pp.input + "\"");
    } else if (in->dtype != datatype::UINT8 || in->dims.size() != 3 || in->dims[2] != 3) {
      p.fail(ipath, "input \"" + pp.input
                      + "\" must be declared UINT8 with dims [height, width, 3] (raw images)");
    } else if ((in->dims[0] < 1 || in->dims[1] < 1) && pp.resize_height == 0) {
      p.fail(ipath, "input \"" + pp.input
                      + "\" has a variable image size: give preprocess.resize so that "
                        "batches share one shape");
    }
  });
}

/// A backend batches fixed-size elements: BYTES tensors are for pipelines, whose stages take
/// and make them.
void refuse_bytes(reader& r, const std::string& path, const char* key,
                  const std::vector<tensor_spec>& specs) {
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (specs[i].dtype == datatype::BYTES)
      r.fail(path + "." + key + "[" + std::to_string(i) + "].datatype",
             "BYTES tensors are taken and made by pipeline stages, not by a backend model; "
             "make this a pipeline whose first step is a stage (e.g. \"fetch\" or \"decode\")");
}

/// What every model, pipeline or not, says of its requests: their deadlines and its cache.
void read_request_limits(reader& r, const std::string& path, model_config& m) {
  r.integer("default_timeout_us", m.default_timeout_us, 1);
  r.integer("max_timeout_us", m.max_timeout_us, 1);
  r.integer("response_cache_bytes", m.response_cache_bytes, 0);
  if (m.default_timeout_us > m.max_timeout_us)
    r.fail(path + ".default_timeout_us", "must be <= max_timeout_us ("
                                           + std::to_string(m.max_timeout_us) + "), got "
                                           + std::to_string(m.default_timeout_us));
}

/// A step's "inputs" or "outputs": an object of tensor name -> pipeline tensor name.
void read_name_map(reader& r, const std::string& path, std::string_view key,
                   std::map<std::string, std::string>& out) {
  auto v = r.get(key, true);
  if (!v)
    return;
  if (!v->is_object() || v->get_object().empty()) {
    r.fail(path, "expected a non-empty object of the model's tensor names to pipeline tensor "
                 "names, got " + describe(*v));
    return;
  }
  for (auto& kv : v->get_object()) {
    if (!kv.value().is_string() || kv.value().get_string().empty())
      r.fail(path + "." + std::string(kv.key()),
             "expected a pipeline tensor's name, got " + describe(kv.value()));
    else
      out[std::string(kv.key())] = std::string(kv.value().get_string());
  }
}

/// A model with "pipeline": its own name, version, tensors, timeouts and steps; nothing that
/// runs a model (its steps' models do).
void read_pipeline_model(reader& r, const std::string& path, model_config& m) {
  static const std::set<std::string, std::less<>> keys{
    "name", "version", "max_batch_size", "inputs", "outputs", "pipeline",
    "default_timeout_us", "max_timeout_us", "response_cache_bytes"};
  if (auto* obj = r.object_value())
    for (auto& kv : *obj)
      if (!keys.count(kv.key())) {
        r.get(kv.key());
        r.fail(r.sub(kv.key()), "not for a pipeline model (its steps' models run on workers; "
                                "a pipeline takes name, version, max_batch_size, inputs, "
                                "outputs, pipeline, default_timeout_us, max_timeout_us, "
                                "response_cache_bytes)");
      }
  m.backend.clear();
  m.devices.clear();
  m.instances = 0;
  r.integer("max_batch_size", m.max_batch_size, 0, 1 << 20);
  read_tensor_specs(r, "inputs", m.inputs);
  read_tensor_specs(r, "outputs", m.outputs);
  read_request_limits(r, path, m);
  auto steps = r.get("pipeline");
  if (!steps->is_array() || steps->get_array().empty()) {
    r.fail(path + ".pipeline", "expected a non-empty array of steps, got " + describe(*steps));
    return;
  }
  auto& arr = steps->get_array();
  for (std::size_t i = 0; i < arr.size(); ++i) {
    auto spath = path + ".pipeline[" + std::to_string(i) + "]";
    reader s(r.errors(), spath, arr[i]);
    if (!s.ok())
      continue;
    pipeline_step step;
    s.string("model", step.model);
    s.string("stage", step.stage);
    if (step.model.empty() == step.stage.empty())
      s.fail(spath, "expected either \"model\" (a model of this deployment) or \"stage\" (a "
                    "registered stage), not " + std::string(step.model.empty() ? "neither" : "both"));
    if (auto params = s.get("parameters")) {
      if (step.model.empty())
        step.parameters = json::serialize(*params); // (the stage reads and checks them)
      else
        s.fail(spath + ".parameters", "a model step takes no parameters (a stage step does)");
    }
    read_name_map(s, spath + ".inputs", "inputs", step.inputs);
    read_name_map(s, spath + ".outputs", "outputs", step.outputs);
    m.pipeline.push_back(std::move(step));
  }
}

/// Whether a tensor of `a`'s dims can be one of `b`'s (the same rank; -1 matches any size).
bool dims_compatible(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && a[i] != -1 && b[i] != -1)
      return false;
  return true;
}

std::string spec_text(const tensor_spec& t) {
  return std::string(to_string(t.dtype)) + " " + shape_to_string(t.dims);
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

/// Checks each pipeline against the models it calls: every step's model exists and is no
/// pipeline, its inputs all come from pipeline tensors that exist by then with the datatype and
/// dims it takes, its outputs name new tensors, rows pass through, and every output of the
/// pipeline is made by a step.
/// server.queues against the rest: a queue's model exists, names and streams are not taken
/// twice, and an entry still in progress can never look abandoned to the other nodes (its
/// claim_idle_ms exceeds the longest a request may take).
void check_queues(const deployment_config& cfg, std::vector<std::string>& errors) {
  uint64_t longest_us = 0;
  for (auto& m : cfg.models)
    longest_us = std::max(longest_us, m.max_timeout_us);
  for (std::size_t i = 0; i < cfg.server.queues.size(); ++i) {
    auto& q = cfg.server.queues[i];
    auto path = "server.queues[" + std::to_string(i) + "]";
    if (cfg.server.cluster.role == cluster_role::worker)
      errors.push_back(path + ": a worker node (server.cluster.role \"worker\") takes no "
                              "requests; configure queues on the front nodes");
    if (!q.model.empty() && !cfg.find_model(q.model))
      errors.push_back(path + ".model: no model named \"" + q.model + "\" in models");
    for (std::size_t j = 0; j < cfg.server.queues.size(); ++j)
      if (j != i && cfg.server.queues[j].stream == q.reply_stream)
        errors.push_back(path + ".reply_stream: \"" + q.reply_stream + "\" is the stream "
                         + "server.queues[" + std::to_string(j) + "] reads requests from");
    for (std::size_t j = 0; j < i; ++j) {
      auto& o = cfg.server.queues[j];
      if (o.name == q.name)
        errors.push_back(path + ".name: \"" + q.name + "\" is server.queues[" + std::to_string(j)
                         + "]'s name too");
      else if (o.stream == q.stream && o.group == q.group && o.redis_host == q.redis_host
               && o.redis_port == q.redis_port && o.redis_db == q.redis_db)
        errors.push_back(path + ".stream: server.queues[" + std::to_string(j)
                         + "] reads the same stream with the same group");
    }
    // The longest a read entry stays unanswered: its request's timeout, plus the time to write
    // its answer. Another node takes over an entry idle for claim_idle_ms.
    uint64_t needed_ms = longest_us / 1000 + 2000;
    if (q.claim_idle_ms < needed_ms)
      errors.push_back(path + ".claim_idle_ms: must be >= " + std::to_string(needed_ms)
                       + " (the longest request timeout, models' max_timeout_us, plus 2 s), got "
                       + std::to_string(q.claim_idle_ms)
                       + ": an entry still in progress would be taken for a failed node's");
  }
}

/// The tensors of a pipeline as its steps are checked in order: its inputs, then each step's
/// outputs.
struct pipeline_tensors {
  std::map<std::string, tensor_spec> known; // what exists so far
  std::set<std::string> made;               // of those, made by a step
  std::set<std::string> unknown; // made by a step already found wrong: not checked further

  /// A tensor made by a wrong step: it exists, unchecked (one error, not a cascade).
  void make_unknown(const std::string& name) {
    if (known.count(name))
      return;
    made.insert(name);
    unknown.insert(name);
    known[name] = {};
  }
};

/// What a step runs, as the pipeline check sees it: a model or a stage, its name in messages and
/// the tensors it takes and makes (dims as the pipeline's tensors have them).
struct step_target {
  std::string what; // model "m" / stage "fetch"
  std::vector<tensor_spec> inputs, outputs;

  static const tensor_spec* find(const std::vector<tensor_spec>& specs, const std::string& name) {
    for (auto& t : specs)
      if (t.name == name)
        return &t;
    return nullptr;
  }
};

/// The step's inputs: each of its target's inputs is given a pipeline tensor that exists and
/// fits it.
void check_step_inputs(const pipeline_step& step, const step_target& m, const std::string& spath,
                       const pipeline_tensors& t, std::vector<std::string>& errors) {
  for (auto& in : m.inputs)
    if (!step.inputs.count(in.name))
      errors.push_back(spath + ".inputs: " + m.what + "'s input " + quoted(in.name)
                       + " is given no pipeline tensor");
  for (auto& [name, source] : step.inputs) {
    auto ipath = spath + ".inputs." + name;
    auto* spec = m.find(m.inputs, name);
    if (!spec) {
      errors.push_back(ipath + ": " + m.what + " has no input " + quoted(name));
      continue;
    }
    auto it = t.known.find(source);
    if (it == t.known.end()) {
      errors.push_back(ipath + ": no pipeline input or earlier step's output is called "
                       + quoted(source));
      continue;
    }
    if (!t.unknown.count(source)
        && (it->second.dtype != spec->dtype || !dims_compatible(it->second.dims, spec->dims)))
      errors.push_back(ipath + ": " + quoted(source) + " is " + spec_text(it->second) + " but "
                       + m.what + "'s input " + quoted(name) + " takes " + spec_text(*spec));
  }
}

/// The step's outputs: outputs of its target, each made into a new pipeline tensor.
void check_step_outputs(const pipeline_step& step, const step_target& m,
                        const std::string& spath, pipeline_tensors& t,
                        std::vector<std::string>& errors) {
  for (auto& [name, target] : step.outputs) {
    auto opath = spath + ".outputs." + name;
    auto* spec = m.find(m.outputs, name);
    if (!spec) {
      errors.push_back(opath + ": " + m.what + " has no output " + quoted(name));
      t.make_unknown(target);
      continue;
    }
    if (t.known.count(target)) {
      errors.push_back(opath + ": " + quoted(target)
                       + " is already a pipeline input or an earlier step's output");
      continue;
    }
    tensor_spec made = *spec;
    made.name = target;
    t.known[target] = std::move(made);
    t.made.insert(target);
  }
}

/// The model a step runs: one of this deployment's, not a pipeline, batching as the pipeline
/// does. Nullopt (the error said) when it cannot run the step.
std::optional<step_target> check_step_model(const deployment_config& cfg, const model_config& p,
                                            const pipeline_step& step, const std::string& spath,
                                            std::vector<std::string>& errors) {
  auto* m = cfg.find_model(step.model);
  if (!m) {
    errors.push_back(spath + ".model: no model " + quoted(step.model) + " in this deployment");
    return std::nullopt;
  }
  if (m->is_pipeline()) {
    errors.push_back(spath + ".model: " + quoted(step.model)
                     + " is a pipeline; a step runs a model, not a pipeline");
    return std::nullopt;
  }
  if ((p.max_batch_size > 0) != (m->max_batch_size > 0))
    errors.push_back(spath + ".model: model " + quoted(m->name) + " "
                     + (m->max_batch_size > 0 ? "batches" : "does not batch")
                     + " (max_batch_size " + std::to_string(m->max_batch_size)
                     + ") but the pipeline " + (p.max_batch_size > 0 ? "does" : "does not")
                     + "; both must take a batch dimension or neither");
  else if (m->max_batch_size < p.max_batch_size)
    errors.push_back(spath + ".model: model " + quoted(m->name) + " takes at most "
                     + std::to_string(m->max_batch_size) + " rows, fewer than the "
                     "pipeline's max_batch_size " + std::to_string(p.max_batch_size));
  return step_target{"model " + quoted(m->name), m->inputs, m->outputs};
}

/// The stage a step runs: a registered one whose parameters are right. Its tensors are per
/// item; items are the pipeline's rows, or its tensors' first dimension when it has no rows.
std::optional<step_target> check_step_stage(const model_config& p, const pipeline_step& step,
                                            const std::string& spath,
                                            std::vector<std::string>& errors) {
  auto* def = stage_registry::global().find(step.stage);
  if (!def) {
    std::string known;
    for (auto& n : stage_registry::global().names())
      known += (known.empty() ? "\"" : ", \"") + n + "\"";
    errors.push_back(spath + ".stage: no stage " + quoted(step.stage) + " is registered (known: "
                     + (known.empty() ? "none" : known) + "; plugins register more)");
    return std::nullopt;
  }
  stage_parameters params(spath + ".parameters", step.parameters);
  auto sig = def->describe(params);
  auto wrong = params.errors();
  errors.insert(errors.end(), wrong.begin(), wrong.end());
  if (!wrong.empty())
    return std::nullopt;
  step_target target{"stage " + quoted(step.stage), std::move(sig.inputs), std::move(sig.outputs)};
  if (p.max_batch_size == 0) // (the item dimension is the tensors' first)
    for (auto* specs : {&target.inputs, &target.outputs})
      for (auto& spec : *specs)
        spec.dims.insert(spec.dims.begin(), -1);
  return target;
}

void check_pipeline(const deployment_config& cfg, const model_config& p, const std::string& path,
                    std::vector<std::string>& errors) {
  pipeline_tensors t;
  for (auto& in : p.inputs)
    t.known[in.name] = in;
  for (std::size_t j = 0; j < p.pipeline.size(); ++j) {
    auto& step = p.pipeline[j];
    auto spath = path + ".pipeline[" + std::to_string(j) + "]";
    auto m = step.is_stage() ? check_step_stage(p, step, spath, errors)
                             : check_step_model(cfg, p, step, spath, errors);
    if (!m) {
      for (auto& kv : step.outputs)
        t.make_unknown(kv.second);
      continue;
    }
    check_step_inputs(step, *m, spath, t, errors);
    check_step_outputs(step, *m, spath, t, errors);
  }
  for (std::size_t k = 0; k < p.outputs.size(); ++k) {
    auto& out = p.outputs[k];
    auto opath = path + ".outputs[" + std::to_string(k) + "]";
    auto it = t.known.find(out.name);
    if (!t.made.count(out.name))
      errors.push_back(opath + ": no step makes " + quoted(out.name));
    else if (!t.unknown.count(out.name)
             && (it->second.dtype != out.dtype || !dims_compatible(it->second.dims, out.dims)))
      errors.push_back(opath + ": " + quoted(out.name) + " is made as " + spec_text(it->second)
                       + " but declared " + spec_text(out));
  }
}

void check_pipelines(const deployment_config& cfg, std::vector<std::string>& errors) {
  for (std::size_t i = 0; i < cfg.models.size(); ++i)
    if (cfg.models[i].is_pipeline())
      check_pipeline(cfg, cfg.models[i], "models[" + std::to_string(i) + "]", errors);
}

void read_identity(reader& r, const std::string& path, model_config& m) {
  r.string("name", m.name, true);
  if (auto nv = r.get("name"); nv && nv->is_string()) {
    bool ok = !m.name.empty() && std::all_of(m.name.begin(), m.name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
    if (!ok)
      r.fail(path + ".name", "must be non-empty letters, digits, '_', '-' or '.', got \""
                               + m.name + "\"");
  }
  r.string("version", m.version);
  if (m.version.empty() || m.version.find('/') != std::string::npos)
    r.fail(path + ".version", "must be a non-empty string without '/'");
}

void read_backend(reader& r, const std::string& path, const std::vector<std::string>& known,
                  model_config& m) {
  r.string("backend", m.backend);
  if (std::find(known.begin(), known.end(), m.backend) != known.end())
    return;
  std::string names;
  for (auto& b : known)
    names += (names.empty() ? "" : ", ") + b;
  r.fail(path + ".backend", "unknown backend \"" + m.backend + "\"; compiled-in backends: "
                              + (names.empty() ? "none" : names));
}

void read_devices(reader& r, const std::string& path, model_config& m) {
  auto dv = r.get("devices");
  if (!dv)
    return;
  if (dv->is_string() && (dv->get_string() == "all" || dv->get_string() == "cpu")) {
    m.devices = {std::string(dv->get_string())};
    return;
  }
  if (!dv->is_array() || dv->get_array().empty())
    return r.fail(path + ".devices", "expected \"all\", \"cpu\" or a non-empty array of \"cpu\" / "
                                     "\"cuda:N\" / \"all\", got " + describe(*dv));
  m.devices.clear();
  auto& arr = dv->get_array();
  for (std::size_t i = 0; i < arr.size(); ++i) {
    auto dpath = path + ".devices[" + std::to_string(i) + "]";
    if (!arr[i].is_string() || !valid_device(std::string(arr[i].get_string())))
      r.fail(dpath, "expected \"cpu\", \"cuda:N\" or \"all\", got " + describe(arr[i]));
    else if (std::count(m.devices.begin(), m.devices.end(), arr[i].get_string()))
      r.fail(dpath, "duplicate device " + json::serialize(arr[i]));
    else
      m.devices.emplace_back(arr[i].get_string());
  }
}

void read_batching(reader& b, model_config& m) {
  b.integer("max_queue_delay_us", m.batching.max_queue_delay_us, 0, 60'000'000);
  b.integer_list("preferred_batch_sizes", m.batching.preferred_batch_sizes, 1);
  b.integer("max_queue_size", m.batching.max_queue_size, 1, 1 << 24);
  b.boolean("stage_ahead", m.batching.stage_ahead);
  b.integer("priority_levels", m.batching.priority_levels, 0, 1024);
  b.integer("default_priority_level", m.batching.default_priority_level, 0, 1024);
}

void read_autoscaling(reader& a, model_config& m) {
  auto& s = m.autoscaling;
  s.enabled = true;
  a.boolean("enabled", s.enabled);
  a.integer("min_instances", s.min_instances, 0, 4096);
  a.integer("max_instances", s.max_instances, 1, 4096, true);
  a.integer("initial_instances", s.initial_instances, 1, 4096);
  a.integer("max_per_device", s.max_per_device, 1, 4096);
  a.number("target_ongoing_requests", s.target_ongoing_requests, 0.0);
  a.number("target_queue_wait_ms", s.target_queue_wait_ms, 0.0);
  a.number("queue_wait_quantile", s.queue_wait_quantile, 0.0);
  a.boolean("predicted_misses", s.predicted_misses);
  a.integer("upscale_delay_ms", s.upscale_delay_ms, 0, 86'400'000);
  a.integer("downscale_delay_ms", s.downscale_delay_ms, 0, 86'400'000);
  a.integer("look_back_ms", s.look_back_ms, 0, 86'400'000);
  a.integer("interval_ms", s.interval_ms, 10, 600'000);
  a.number("upscaling_factor", s.upscaling_factor, 0.0);
  a.number("downscaling_factor", s.downscaling_factor, 0.0);
  a.number("max_busy_after_downscale", s.max_busy_after_downscale, 0.0);
}

/// How the autoscaling keys relate to each other and to the model's other keys.
void check_autoscaling(const model_config& m, const std::function<void(const std::string&,
                                                                          const std::string&)>& fail) {
  const auto& s = m.autoscaling;
  if (!s.enabled)
    return;
  auto n = [](uint32_t x) { return std::to_string(x); };
  if (s.min_instances > s.max_instances)
    fail("autoscaling.min_instances", "must be <= max_instances (" + n(s.max_instances)
                                        + "), got " + n(s.min_instances));
  if (s.initial_instances > s.max_instances
      || (s.initial_instances > 0 && s.initial_instances < s.min_instances))
    fail("autoscaling.initial_instances", "must be between min_instances (" + n(s.min_instances)
                                            + ") and max_instances (" + n(s.max_instances)
                                            + "), got " + n(s.initial_instances));
  if (s.queue_wait_quantile <= 0 || s.queue_wait_quantile > 1)
    fail("autoscaling.queue_wait_quantile",
         "must be in (0, 1], got " + std::to_string(s.queue_wait_quantile));
  if (s.upscaling_factor <= 0 || s.downscaling_factor <= 0)
    fail(s.upscaling_factor <= 0 ? "autoscaling.upscaling_factor" : "autoscaling.downscaling_factor",
         "must be > 0");
  if (s.target_ongoing_requests <= 0 && s.target_queue_wait_ms <= 0 && !s.predicted_misses)
    fail("autoscaling", "has nothing to scale on: set target_ongoing_requests or "
                        "target_queue_wait_ms above 0, or predicted_misses true");
  bool all = std::count(m.devices.begin(), m.devices.end(), "all") > 0;
  auto room = static_cast<uint64_t>(m.devices.size())
              * (s.max_per_device ? s.max_per_device : s.max_instances);
  if (!all && room < s.max_instances)
    fail("autoscaling.max_instances", "must be <= devices x max_per_device ("
                                        + std::to_string(room) + "), got " + n(s.max_instances));
  if (m.isolation == isolation_mode::process)
    fail("autoscaling", "not with isolation \"process\" yet: an isolated worker's process "
                        "cannot be started and stopped by the autoscaler");
}

void read_warmup(reader& w, model_config& m) {
  w.integer_list("batch_sizes", m.warmup.batch_sizes, 1);
  w.integer("iterations", m.warmup.iterations, 0, 10'000);
}

/// restart, retry and breaker: how the model's workers fail and come back.
void read_fault_handling(reader& r, const std::string& path, model_config& m) {
  r.object("restart", [&](reader& rr) {
    read_restart(rr, path + ".restart", m.restart);
    rr.integer("model_max_restarts", m.model_max_restarts, 0, 1'000'000);
  });
  r.object("retry", [&](reader& rr) { rr.integer("max_retries", m.max_retries, 0, 10); });
  r.object("breaker", [&](reader& b) {
    b.integer("failure_threshold", m.breaker.failure_threshold, 1, 1'000'000);
    b.integer("reset_timeout_ms", m.breaker.reset_timeout_ms, 1, 3'600'000);
    b.integer("max_reset_timeout_ms", m.breaker.max_reset_timeout_ms, 1, 3'600'000);
    b.number("backoff_factor", m.breaker.backoff_factor, 1.0);
  });
}

/// The backend's own parameters: strings, numbers and booleans, passed on as text.
void read_parameters(reader& r, const std::string& path, model_config& m) {
  auto pv = r.get("parameters");
  if (!pv)
    return;
  if (!pv->is_object())
    return r.fail(path + ".parameters", "expected an object, got " + describe(*pv));
  for (auto& kv : pv->get_object()) {
    auto& val = kv.value();
    if (val.is_string())
      m.parameters[std::string(kv.key())] = std::string(val.get_string());
    else if (val.is_number() || val.is_bool())
      m.parameters[std::string(kv.key())] = json::serialize(val);
    else
      r.fail(path + ".parameters." + std::string(kv.key()),
             "expected a string, number or boolean, got " + describe(val));
  }
}

/// Relations between a model's keys, once all of them are read (each key's own type and bounds
/// are checked as it is read): errors name the key as the file writes it.
void check_model(const std::string& path, const model_config& m, std::vector<std::string>& errors) {
  auto fail = [&](const std::string& key, const std::string& what) {
    errors.push_back(path + "." + key + ": " + what);
  };
  const auto& b = m.batching;
  if (b.default_priority_level > b.priority_levels)
    fail("batching.default_priority_level", "must be <= priority_levels ("
                                              + std::to_string(b.priority_levels) + "), got "
                                              + std::to_string(b.default_priority_level));
  for (std::size_t i = 0; i < b.preferred_batch_sizes.size(); ++i)
    if (b.preferred_batch_sizes[i] > m.max_batch_size)
      fail("batching.preferred_batch_sizes[" + std::to_string(i) + "]",
           "must be <= max_batch_size (" + std::to_string(m.max_batch_size) + "), got "
             + std::to_string(b.preferred_batch_sizes[i]));
  auto cap = std::max<uint32_t>(m.max_batch_size, 1);
  for (std::size_t i = 0; i < m.warmup.batch_sizes.size(); ++i)
    if (m.warmup.batch_sizes[i] > cap)
      fail("warmup.batch_sizes[" + std::to_string(i) + "]",
           "must be <= max(max_batch_size, 1) (" + std::to_string(cap) + "), got "
             + std::to_string(m.warmup.batch_sizes[i]));
  if (m.breaker.max_reset_timeout_ms < m.breaker.reset_timeout_ms)
    fail("breaker.max_reset_timeout_ms",
         below_text("reset_timeout_ms", m.breaker.reset_timeout_ms, m.breaker.max_reset_timeout_ms));
  check_autoscaling(m, fail);
}

/// What a valid model's keys imply: the default priority level (unset: the lowest), preferred
/// batch sizes in ascending order.
void normalize_model(model_config& m) {
  if (m.batching.default_priority_level == 0)
    m.batching.default_priority_level = m.batching.priority_levels;
  std::sort(m.batching.preferred_batch_sizes.begin(), m.batching.preferred_batch_sizes.end());
}

void read_model(const std::string& path, const json::value& v, std::vector<std::string>& errors,
                const std::string& base_dir, const std::vector<std::string>& known_backends,
                model_config& m) {
  reader r(errors, path, v);
  if (!r.ok())
    return;
  read_identity(r, path, m);
  if (r.has("pipeline"))
    return read_pipeline_model(r, path, m);
  read_backend(r, path, known_backends, m);
  r.string("path", m.path);
  if (auto wrong = resolve_file(m.path, base_dir))
    r.fail(path + ".path", *wrong);
  r.integer("max_batch_size", m.max_batch_size, 0, 1 << 20);
  read_tensor_specs(r, "inputs", m.inputs);
  read_tensor_specs(r, "outputs", m.outputs, &base_dir);
  refuse_bytes(r, path, "inputs", m.inputs);
  refuse_bytes(r, path, "outputs", m.outputs);
  read_devices(r, path, m);
  r.integer("instances", m.instances, 1, 256);
  r.object("autoscaling", [&](reader& a) { read_autoscaling(a, m); });
  if (r.has("instances") && m.autoscaling.enabled)
    r.fail(path + ".instances", "not with \"autoscaling\", whose min_instances, max_instances "
                                "and initial_instances say how many");
  r.object("batching", [&](reader& b) { read_batching(b, m); });
  r.object("warmup", [&](reader& w) { read_warmup(w, m); });
  read_fault_handling(r, path, m);
  r.choice("isolation", m.isolation, isolation_modes);
  r.integer("isolation_shm_bytes", m.isolation_shm_bytes, 0, 64ull << 30);
  read_gpu(r, path, m);
  read_preprocess(r, path, m);
  r.integer("execution_timeout_ms", m.execution_timeout_ms, 0, 86'400'000);
  r.integer("linger_us", m.linger_us, 0, 100'000);
  read_request_limits(r, path, m);
  read_parameters(r, path, m);
}

} // namespace

std::string_view to_string(cluster_role r) {
  return name_in(cluster_roles, r);
}

std::string_view to_string(caf_scheduler s) {
  return name_in(caf_schedulers, s);
}

std::string_view to_string(gpu_precision p) {
  return name_in(gpu_precisions, p);
}

std::string_view to_string(isolation_mode m) {
  return name_in(isolation_modes, m);
}

std::vector<std::pair<std::string, uint32_t>> model_config::instance_slots() const {
  std::vector<std::pair<std::string, uint32_t>> out;
  const auto& a = autoscaling;
  if (!a.enabled) {
    for (auto& device : devices)
      for (uint32_t i = 0; i < instances; ++i)
        out.emplace_back(device, i);
    return out;
  }
  uint32_t per_device = a.max_per_device ? a.max_per_device : a.max_instances;
  for (uint32_t i = 0; i < per_device; ++i)
    for (auto& device : devices)
      if (out.size() < a.max_instances)
        out.emplace_back(device, i);
  return out;
}

uint32_t model_config::initial_instances() const {
  auto slots = static_cast<uint32_t>(instance_slots().size());
  if (!autoscaling.enabled)
    return slots;
  auto n = autoscaling.initial_instances ? autoscaling.initial_instances
                                         : std::max<uint32_t>(autoscaling.min_instances, 1);
  return std::min(n, slots);
}

std::vector<uint32_t> model_config::gpu_buckets() const {
  if (max_batch_size == 0)
    return {};
  auto b = gpu.batch_buckets;
  if (b.empty()) { // powers of two below the step, then every step: padding stays small
    uint32_t step = std::max<uint32_t>(16, max_batch_size / 8);
    for (uint32_t x = 1; x < std::min(step, max_batch_size); x *= 2)
      b.push_back(x);
    for (uint32_t x = step; x < max_batch_size; x += step)
      b.push_back(x);
  }
  if (b.empty() || b.back() != max_batch_size)
    b.push_back(max_batch_size);
  return b;
}

caf::error resolve_devices(deployment_config& cfg, int cuda_devices) {
  std::string errors;
  for (std::size_t i = 0; i < cfg.models.size(); ++i) {
    auto& m = cfg.models[i];
    std::vector<std::string> out;
    auto add = [&](const std::string& d) {
      if (std::find(out.begin(), out.end(), d) == out.end())
        out.push_back(d);
    };
    for (auto& d : m.devices) {
      if (d == "all") {
        for (int g = 0; g < cuda_devices; ++g)
          add("cuda:" + std::to_string(g));
        if (cuda_devices == 0)
          add("cpu");
      } else if (d.rfind("cuda:", 0) == 0 && std::stoi(d.substr(5)) >= cuda_devices) {
        errors += (errors.empty() ? "" : "\n") + std::string("models[") + std::to_string(i)
                  + "].devices: model '" + m.name + "' asks for " + d
                  + ", which does not exist: this machine has " + std::to_string(cuda_devices)
                  + " usable CUDA device(s)";
      } else {
        add(d);
      }
    }
    m.devices = std::move(out);
  }
  if (!errors.empty())
    return make_error(errc::invalid_config, errors);
  return caf::none;
}

caf::expected<deployment_config>
parse_deployment(const std::string& json_text, const std::string& base_dir,
                 const std::vector<std::string>& known_backends) {
  json::error_code ec;
  json::parse_options opts;
  opts.allow_comments = false;
  auto doc = json::parse(json_text, ec, {}, opts);
  if (ec)
    return make_error(errc::invalid_config, "(root): not valid JSON: " + ec.message());
  deployment_config cfg;
  std::vector<std::string> errors;
  {
    reader root(errors, "", doc);
    if (root.ok()) {
      root.object("server", [&](reader& server) { read_server(server, cfg.server, base_dir); });
      root.array("plugins", false, [&](const std::string& path, const json::value& v) {
        if (!v.is_string()) // (loaded before this check: runtime/plugin.hpp)
          return errors.push_back(path + ": expected a plugin's file (a shared library), got "
                                  + describe(v));
        std::string file(v.get_string());
        if (auto wrong = resolve_file(file, base_dir))
          errors.push_back(path + ": " + *wrong);
        else
          cfg.plugins.push_back(std::move(file));
      });
      root.array("models", true, [&](const std::string& path, const json::value& v) {
        model_config m; // read, then checked as a whole, then normalized
        read_model(path, v, errors, base_dir, known_backends, m);
        if (!m.is_pipeline()) {
          check_model(path, m, errors);
          normalize_model(m);
        }
        if (!m.name.empty() && cfg.find_model(m.name))
          errors.push_back(path + ".name: duplicate model name \"" + m.name + "\"");
        cfg.models.push_back(std::move(m));
      });
      if (auto mv = root.get("models"); mv && mv->is_array() && mv->get_array().empty())
        errors.push_back("models: must list at least one model");
      check_pipelines(cfg, errors);
      check_queues(cfg, errors);
    }
  }
  for (auto& e : errors)
    if (e.rfind(": ", 0) == 0)
      e = "(root)" + e;
  if (!errors.empty()) {
    std::string all;
    for (auto& e : errors)
      all += (all.empty() ? "" : "\n") + e;
    return make_error(errc::invalid_config, std::move(all));
  }
  return cfg;
}

void share_cpu_threads(deployment_config& cfg, unsigned cores) {
  std::size_t on_cpu = 0;
  for (auto& m : cfg.models)
    if (!m.is_pipeline()) // (its steps' models run it)
      for (auto& slot : m.instance_slots())
        on_cpu += slot.first == "cpu";
  if (on_cpu == 0)
    return;
  for (auto& m : cfg.models)
    m.cpu_threads = std::max<uint32_t>(1, static_cast<uint32_t>(cores / on_cpu));
}

caf::expected<deployment_config>
load_deployment(const std::string& path, const std::vector<std::string>& known_backends) {
  auto text = read_file(path);
  if (!text)
    return make_error(errc::invalid_config, path + ": cannot open the deployment file");
  auto dir = std::filesystem::absolute(path).parent_path().string();
  auto cfg = parse_deployment(*text, dir, known_backends);
  if (cfg)
    cfg->source = std::filesystem::absolute(path).string();
  return cfg;
}

} // namespace actorserve
