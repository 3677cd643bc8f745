#include "net/queue/redis_client.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "runtime/error.hpp"

namespace actorserve {

struct redis_connection::context {
  redisContext* c = nullptr;
};

namespace {

redis_value convert(const redisReply* r) {
  redis_value v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.kind = redis_value::string;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.kind = redis_value::status;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.kind = redis_value::error;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.kind = redis_value::integer;
      v.number = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.kind = redis_value::array;
      v.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i)
        v.elements.push_back(convert(r->element[i]));
      break;
    default:
      v.kind = redis_value::nil;
  }
  return v;
}

timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}

/// [id, [field, value, ...]] or [id, nil] (a pending entry deleted from the stream).
std::optional<stream_entry> entry_of(const redis_value& v) {
  if (v.kind != redis_value::array || v.elements.size() != 2
      || v.elements[0].kind != redis_value::string)
    return std::nullopt;
  stream_entry e;
  e.id = v.elements[0].str;
  auto& fields = v.elements[1];
  if (fields.kind == redis_value::nil) {
    e.deleted = true;
    return e;
  }
  if (fields.kind != redis_value::array || fields.elements.size() % 2 != 0)
    return std::nullopt;
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].kind != redis_value::string
        || fields.elements[i + 1].kind != redis_value::string)
      return std::nullopt;
    e.fields.emplace_back(fields.elements[i].str, fields.elements[i + 1].str);
  }
  return e;
}

std::optional<std::vector<stream_entry>> entries_of(const redis_value& list) {
  if (list.kind != redis_value::array)
    return std::nullopt;
  std::vector<stream_entry> out;
  out.reserve(list.elements.size());
  for (auto& v : list.elements) {
    auto e = entry_of(v);
    if (!e)
      return std::nullopt;
    out.push_back(std::move(*e));
  }
  return out;
}

} // namespace

std::optional<std::vector<stream_entry>> xreadgroup_entries(const redis_value& reply) {
  if (reply.kind == redis_value::nil)
    return std::vector<stream_entry>{};
  // [[stream, [entries...]]]
  if (reply.kind != redis_value::array || reply.elements.size() != 1)
    return std::nullopt;
  auto& s = reply.elements[0];
  if (s.kind != redis_value::array || s.elements.size() != 2)
    return std::nullopt;
  return entries_of(s.elements[1]);
}

std::optional<autoclaim_result> xautoclaim_entries(const redis_value& reply) {
  if (reply.kind != redis_value::array || reply.elements.size() < 2
      || reply.elements[0].kind != redis_value::string)
    return std::nullopt;
  autoclaim_result r;
  r.cursor = reply.elements[0].str;
  auto entries = entries_of(reply.elements[1]);
  if (!entries)
    return std::nullopt;
  r.entries = std::move(*entries);
  if (reply.elements.size() >= 3 && reply.elements[2].kind == redis_value::array)
    for (auto& id : reply.elements[2].elements)
      if (id.kind == redis_value::string) {
        stream_entry gone;
        gone.id = id.str;
        gone.deleted = true;
        r.entries.push_back(std::move(gone));
      }
  return r;
}

std::vector<std::pair<std::string, uint64_t>> xpending_deliveries(const redis_value& reply) {
  std::vector<std::pair<std::string, uint64_t>> out;
  if (reply.kind != redis_value::array)
    return out;
  for (auto& row : reply.elements)
    if (row.kind == redis_value::array && row.elements.size() == 4
        && row.elements[0].kind == redis_value::string
        && row.elements[3].kind == redis_value::integer)
      out.emplace_back(row.elements[0].str, static_cast<uint64_t>(row.elements[3].number));
  return out;
}

caf::expected<std::unique_ptr<redis_connection>> redis_connection::open(const options& opts) {
  std::unique_ptr<redis_connection> conn{new redis_connection};
  conn->peer_ = opts.host + ":" + std::to_string(opts.port);
  conn->ctx_ = new context;
  conn->ctx_->c = redisConnectWithTimeout(opts.host.c_str(), opts.port,
                                          to_timeval(opts.connect_timeout));
  if (!conn->ctx_->c)
    return make_error(errc::not_ready, "redis " + conn->peer_ + ": out of memory");
  if (conn->ctx_->c->err)
    return make_error(errc::not_ready,
                      "redis " + conn->peer_ + ": cannot connect: " + conn->ctx_->c->errstr);
  conn->set_timeout(opts.connect_timeout);
  auto expect_ok = [&](const std::vector<std::string>& cmd, const char* what) -> caf::error {
    auto r = conn->command(cmd);
    if (!r)
      return std::move(r.error());
    if (r->is_error())
      return make_error(errc::not_ready, "redis " + conn->peer_ + ": " + what + ": " + r->str);
    return {};
  };
  if (!opts.password.empty()) {
    auto err = opts.username.empty()
                 ? expect_ok({"AUTH", opts.password}, "AUTH")
                 : expect_ok({"AUTH", opts.username, opts.password}, "AUTH");
    if (err)
      return err;
  }
  if (opts.db != 0)
    if (auto err = expect_ok({"SELECT", std::to_string(opts.db)}, "SELECT"))
      return err;
  return conn;
}

redis_connection::~redis_connection() {
  if (ctx_) {
    if (ctx_->c)
      redisFree(ctx_->c);
    delete ctx_;
  }
}

void redis_connection::set_timeout(std::chrono::milliseconds t) {
  if (ctx_ && ctx_->c)
    redisSetTimeout(ctx_->c, to_timeval(t));
}

caf::expected<std::vector<redis_value>>
redis_connection::pipeline(const std::vector<std::vector<std::string>>& cmds) {
  auto* c = ctx_ ? ctx_->c : nullptr;
  if (!c || c->err)
    return make_error(errc::not_ready, "redis " + peer_ + ": not connected");
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (auto& cmd : cmds) {
    argv.clear();
    lens.clear();
    for (auto& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())
        != REDIS_OK)
      return make_error(errc::not_ready, "redis " + peer_ + ": " + c->errstr);
  }
  std::vector<redis_value> out;
  out.reserve(cmds.size());
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || !raw)
      return make_error(errc::not_ready, "redis " + peer_ + ": " + (c->err ? c->errstr : "no reply"));
    auto* reply = static_cast<redisReply*>(raw);
    out.push_back(convert(reply));
    freeReplyObject(reply);
  }
  return out;
}

caf::expected<redis_value> redis_connection::command(const std::vector<std::string>& args) {
  auto r = pipeline({args});
  if (!r)
    return std::move(r.error());
  return std::move(r->front());
}

void redis_connection::interrupt() {
  if (ctx_ && ctx_->c && ctx_->c->fd >= 0)
    ::shutdown(ctx_->c->fd, SHUT_RDWR);
}

} // namespace actorserve
