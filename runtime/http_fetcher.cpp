#include "runtime/http_fetcher.hpp"
#include "runtime/host.hpp"

#include <chrono>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <curl/curl.h>
#include <sys/socket.h>

namespace actorserve {
namespace {

/// One fetch() from call to result, over its attempts and redirects.
struct transfer {
  http_fetcher::impl* owner = nullptr;
  uint64_t id = 0;
  std::string url;     // as asked
  std::string current; // this attempt's URL (after redirects)
  int64_t deadline_ns = 0;
  int64_t started_ns = 0;
  int64_t retry_at_ns = 0; // > 0: waiting to be tried again (no easy handle meanwhile)
  bool waiting_slot = false; // waiting for a connection slot to its host (no easy handle)
  std::string host;          // the running attempt's host (its slot), or the one it waits for
  std::shared_ptr<std::atomic<bool>> cancelled, abandoned;
  uint32_t attempts = 0, redirects = 0;
  bool host_listed = false;
  std::string refused; // why the connect-time check refused the address
  bool too_large = false;
  std::vector<uint8_t> body; // a 4-byte length (filled in at the end), then the body
  CURL* easy = nullptr;
  fetch_trace trace;
  curl_slist* headers = nullptr; // its traceparent, while an attempt runs
};

std::string ms_text(int64_t ns) {
  return std::to_string(ns / 1'000'000) + " ms";
}

} // namespace

struct http_fetcher::impl {
  fetch_settings settings;
  callback done;
  std::vector<std::string> allow_errors;
  fetch_allow_list allow;
  CURLM* multi = nullptr;
  std::mutex mtx;
  std::deque<std::unique_ptr<transfer>> incoming; // guarded by mtx
  bool stopping = false;                          // guarded by mtx
  std::list<std::unique_ptr<transfer>> active;    // the fetcher thread's own
  // Attempts running (an easy handle in the multi), in all and per host. An attempt starts only
  // when both are below their bounds, so that its timeout counts from its start: curl would
  // queue the rest itself, but its timeout counts the time queued too (a long list of URLs to
  // one host timed out behind its own first items).
  uint32_t running = 0;
  std::unordered_map<std::string, uint32_t> running_per_host;
  std::atomic<int64_t>* in_flight = nullptr;
  std::mt19937_64 rng{std::random_device{}()};
  std::thread thread;

  impl(fetch_settings s, callback cb)
    : settings(std::move(s)), done(std::move(cb)), allow(settings.allow, allow_errors) {}

  void release(transfer& t);
  bool slot_free(const std::string& host) const;
  void finish(transfer& t, errc code, std::string message, long status = 0);
  bool start_attempt(transfer& t);
  void completed(transfer& t, CURLcode rc);
  void retry_or_fail(transfer& t, errc code, const std::string& message, long status);
  bool follow_redirect(transfer& t, long status);
  void sweep();
  void run();
};

namespace {

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  auto bytes = size * n;
  if (t->body.size() - 4 + bytes > t->owner->settings.max_bytes) {
    t->too_large = true;
    return 0; // (aborts the transfer: CURLE_WRITE_ERROR)
  }
  t->body.insert(t->body.end(), data, data + bytes);
  return bytes;
}

/// Every new connection's address, as resolved, against the allow-list (a listed name that
/// resolves to the metadata service is refused here).
curl_socket_t open_checked_socket(void* user, curlsocktype, curl_sockaddr* address) {
  auto* t = static_cast<transfer*>(user);
  auto ip = ip_of(&address->addr);
  if (!ip) {
    t->refused = "not an IP address";
    return CURL_SOCKET_BAD;
  }
  if (auto why = t->owner->allow.refuse_address(*ip, t->host_listed)) {
    t->refused = *why;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}

/// The scheme and host of `url` ("" when it is not an absolute http(s) URL).
std::pair<std::string, std::string> scheme_and_host(const std::string& url) {
  std::pair<std::string, std::string> out;
  CURLU* u = curl_url();
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
      out.first = scheme;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
      out.second = host;
    curl_free(scheme);
    curl_free(host);
  }
  curl_url_cleanup(u);
  if (out.second.size() > 2 && out.second.front() == '[') // an IPv6 literal
    out.second = out.second.substr(1, out.second.size() - 2);
  return out;
}

} // namespace

/// Ends the transfer's current attempt (its easy handle), if one is running.
void http_fetcher::impl::release(transfer& t) {
  t.waiting_slot = false;
  if (!t.easy)
    return;
  curl_multi_remove_handle(multi, t.easy);
  curl_easy_cleanup(t.easy);
  t.easy = nullptr;
  curl_slist_free_all(t.headers);
  t.headers = nullptr;
  --running;
  auto it = running_per_host.find(t.host);
  if (it != running_per_host.end() && --it->second == 0)
    running_per_host.erase(it);
}

bool http_fetcher::impl::slot_free(const std::string& host) const {
  if (running >= settings.max_connections)
    return false;
  auto it = running_per_host.find(host);
  return it == running_per_host.end() || it->second < settings.max_per_host;
}

void http_fetcher::impl::finish(transfer& t, errc code, std::string message, long status) {
  release(t);
  fetch_result r;
  r.id = t.id;
  r.code = code;
  r.message = std::move(message);
  r.http_status = status;
  r.attempts = t.attempts;
  r.duration_ns = steady_now_ns() - t.started_ns;
  r.url = t.url;
  r.trace = std::move(t.trace);
  if (code == errc::none) {
    auto len = static_cast<uint32_t>(t.body.size() - 4);
    std::memcpy(t.body.data(), &len, 4);
    r.body = std::move(t.body);
  }
  t.retry_at_ns = -1; // (done: swept away)
  in_flight->fetch_sub(1, std::memory_order_relaxed);
  done(std::move(r));
}

/// Checks the (current) URL against the allow-list and starts an attempt, or leaves it waiting
/// for a connection slot to its host; false when it failed at once (finished).
bool http_fetcher::impl::start_attempt(transfer& t) {
  auto [scheme, host] = scheme_and_host(t.current);
  if (scheme != "http" && scheme != "https") {
    finish(t, errc::invalid_input, "\"" + t.current + "\" is not an http:// or https:// URL");
    return false;
  }
  if (allow.empty()) {
    finish(t, errc::forbidden, "fetching " + t.current + " is not allowed: this stage allows no "
                               "hosts yet (list them in its parameter \"allow\")");
    return false;
  }
  t.retry_at_ns = 0;
  t.host = host;
  t.waiting_slot = !slot_free(host);
  if (t.waiting_slot)
    return true; // (sweep starts it when a slot frees, in the order transfers came)
  ++running;
  ++running_per_host[host];
  t.host_listed = allow.host_listed(host);
  t.refused.clear();
  t.too_large = false;
  t.body.assign(4, 0);
  ++t.attempts;
  auto left_ms = (t.deadline_ns - steady_now_ns()) / 1'000'000;
  CURL* e = curl_easy_init();
  t.easy = e;
  curl_easy_setopt(e, CURLOPT_URL, t.current.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); // (by hand: each hop checked)
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_checked_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(settings.max_bytes));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings.connect_timeout_ms));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, std::min<int64_t>(settings.timeout_ms,
                                                                            left_ms))));
  curl_easy_setopt(e, CURLOPT_USERAGENT, "actorserve-fetch");
  if (!t.trace.trace_id.empty()) {
    t.headers = curl_slist_append(nullptr, ("traceparent: " + t.trace.traceparent()).c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
  }
  // No proxy from the environment (http_proxy, ...): the connect-time check would see the proxy's
  // address instead of the origin's, and let an unlisted host through it.
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_multi_add_handle(multi, e);
  return true;
}

void http_fetcher::impl::retry_or_fail(transfer& t, errc code, const std::string& message,
                                       long status) {
  release(t);
  if (t.attempts <= settings.retries && retryable_status(status)) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    auto wait = retry_backoff_ns(t.attempts, int64_t{settings.retry_backoff_ms} * 1'000'000,
                                 unit(rng));
    if (steady_now_ns() + wait < t.deadline_ns) {
      t.retry_at_ns = steady_now_ns() + wait; // (sweep starts it then)
      t.current = t.url;
      t.redirects = 0;
      return;
    }
  }
  finish(t, code, message + (t.attempts > 1 ? " (after " + std::to_string(t.attempts)
                                                + " attempts)" : ""), status);
}

/// A 3xx answer: the next hop, checked as the first was; false when the transfer ended.
bool http_fetcher::impl::follow_redirect(transfer& t, long status) {
  char* location = nullptr;
  curl_easy_getinfo(t.easy, CURLINFO_REDIRECT_URL, &location);
  std::string next = location ? location : "";
  if (next.empty()) {
    finish(t, errc::upstream_failed, t.url + ": HTTP " + std::to_string(status)
                                     + " without a Location to follow", status);
    return false;
  }
  if (++t.redirects > settings.max_redirects) {
    finish(t, errc::upstream_failed, t.url + ": more than " + std::to_string(settings.max_redirects)
                                     + " redirects (parameter max_redirects); the last to "
                                     + next, status);
    return false;
  }
  release(t);
  t.current = next;
  --t.attempts; // (a hop is not a new attempt)
  return start_attempt(t);
}

void http_fetcher::impl::completed(transfer& t, CURLcode rc) {
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  auto where = t.current == t.url ? t.url : t.url + " (redirected to " + t.current + ")";
  if (!t.refused.empty())
    return finish(t, errc::forbidden, "fetching " + where + " is not allowed: " + t.refused);
  if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED)
    return finish(t, errc::payload_too_large, where + ": the body is larger than "
                                              + std::to_string(settings.max_bytes)
                                              + " bytes (parameter max_bytes)", status);
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    bool deadline = steady_now_ns() >= t.deadline_ns - 1'000'000;
    if (deadline)
      return finish(t, errc::deadline_exceeded, where + ": no complete answer before the "
                                                "request's deadline", 0);
    return retry_or_fail(t, errc::deadline_exceeded,
                         where + ": no complete answer within " + std::to_string(
                           settings.timeout_ms) + " ms (parameter timeout_ms)", 0);
  }
  if (rc != CURLE_OK)
    return retry_or_fail(t, errc::upstream_failed,
                         where + ": " + curl_easy_strerror(rc), 0);
  if (status >= 300 && status < 400)
    return (void)follow_redirect(t, status);
  if (status < 200 || status >= 300)
    return retry_or_fail(t, errc::upstream_failed,
                         where + ": HTTP " + std::to_string(status), status);
  finish(t, errc::none, "", status);
}

/// Starts retries that are due and waiting attempts that now have a slot (in arrival order);
/// ends transfers whose deadline passed or whose client left.
void http_fetcher::impl::sweep() {
  auto now = steady_now_ns();
  for (auto& p : active) {
    auto& t = *p;
    if (t.retry_at_ns < 0)
      continue;
    if (t.cancelled && t.cancelled->load(std::memory_order_relaxed))
      finish(t, errc::cancelled, t.url + ": cancelled (the client left)");
    else if (t.abandoned && t.abandoned->load(std::memory_order_relaxed))
      finish(t, errc::cancelled, t.url + ": cancelled (its request failed)");
    else if (now >= t.deadline_ns)
      finish(t, errc::deadline_exceeded, t.url + ": the request's deadline passed after "
                                           + ms_text(now - t.started_ns));
    else if ((t.retry_at_ns > 0 && now >= t.retry_at_ns) || (t.waiting_slot && slot_free(t.host)))
      start_attempt(t);
  }
  active.remove_if([](auto& p) { return p->retry_at_ns < 0; });
}

void http_fetcher::impl::run() {
  for (;;) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (stopping)
        break;
      while (!incoming.empty()) {
        active.push_back(std::move(incoming.front()));
        incoming.pop_front();
        start_attempt(*active.back());
      }
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left))
      if (m->msg == CURLMSG_DONE) {
        transfer* t = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
        auto rc = m->data.result;
        completed(*t, rc);
      }
    sweep();
    curl_multi_poll(multi, nullptr, 0, 20, nullptr); // (woken by fetch(); 20 ms for sweeps)
  }
  for (auto& p : active) // (reported, so that whoever counts them in flight does not wait)
    if (p->retry_at_ns >= 0)
      finish(*p, errc::cancelled, p->url + ": cancelled (the stage stopped)");
  active.clear();
  std::lock_guard<std::mutex> guard{mtx};
  for (auto& p : incoming) {
    in_flight->fetch_sub(1, std::memory_order_relaxed);
    fetch_result r;
    r.id = p->id;
    r.code = errc::cancelled;
    r.message = p->url + ": cancelled (the stage stopped)";
    done(std::move(r));
  }
  incoming.clear();
}

http_fetcher::http_fetcher(fetch_settings settings, callback done)
  : impl_(std::make_unique<impl>(std::move(settings), std::move(done))) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (!impl_->allow_errors.empty())
    throw std::runtime_error("allow: " + impl_->allow_errors.front());
  impl_->multi = curl_multi_init();
  if (!impl_->multi)
    throw std::runtime_error("libcurl could not start");
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    static_cast<long>(impl_->settings.max_connections));
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(impl_->settings.max_per_host));
  curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(impl_->settings.max_connections));
  impl_->in_flight = &in_flight_;
  impl_->thread = std::thread([i = impl_.get()] { i->run(); });
}

http_fetcher::~http_fetcher() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
  }
  curl_multi_wakeup(impl_->multi);
  impl_->thread.join();
  curl_multi_cleanup(impl_->multi);
}

void http_fetcher::fetch(uint64_t id, std::string url, int64_t deadline_ns,
                         std::shared_ptr<std::atomic<bool>> client_left,
                         std::shared_ptr<std::atomic<bool>> abandoned, fetch_trace trace) {
  auto t = std::make_unique<transfer>();
  t->trace = std::move(trace);
  t->owner = impl_.get();
  t->id = id;
  t->current = url;
  t->url = std::move(url);
  t->deadline_ns = deadline_ns;
  t->started_ns = steady_now_ns();
  t->cancelled = std::move(client_left);
  t->abandoned = std::move(abandoned);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->incoming.push_back(std::move(t));
  }
  curl_multi_wakeup(impl_->multi);
}

} // namespace actorserve
