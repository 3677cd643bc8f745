// actorserve-loadgen: an asynchronous KServe v2 load generator (Asio/Beast, one I/O thread).
// Closed loop: N connections each send the next request when the last one is answered, for a
// sweep of N. Open loop: requests are issued at a fixed rate on a pool of connections, and
// latency counts from the scheduled send time (no coordinated omission). Prints a table, a
// progress line while it runs, and writes CSV and JSON.
//
//   actorserve-loadgen --port P --path /v2/models/mlp/infer --body FILE [--json-length N]
//                      [--concurrency 1,16,64 | --rate R] [--duration S] [--warmup S]
//                      [--threads T] [--label NAME] [--csv FILE] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string path = "/v2/models/mlp/infer";
  std::string body;
  std::string content_type = "application/json";
  long json_length = -1; // Inference-Header-Content-Length, for binary bodies
  std::vector<int> concurrency{1, 16, 64};
  double rate = 0;       // > 0: open loop
  int open_connections = 256;
  int threads = 1;        // closed loop: connections spread over this many I/O threads
  double duration = 10;
  double warmup = 2;
  std::string label = "run";
  std::string csv, json;
};

struct result {
  std::string label;
  std::string mode;
  double load = 0; // concurrency or rate
  double seconds = 0;
  std::vector<double> latencies_us;
  std::map<std::string, uint64_t> errors;
  double throughput() const { return seconds > 0 ? latencies_us.size() / seconds : 0; }
  double pct(double p) const {
    if (latencies_us.empty())
      return 0;
    auto idx = static_cast<std::size_t>(p / 100.0 * (latencies_us.size() - 1) + 0.5);
    return latencies_us[std::min(idx, latencies_us.size() - 1)];
  }
  uint64_t error_total() const {
    uint64_t n = 0;
    for (auto& kv : errors)
      n += kv.second;
    return n;
  }
};

class run_state {
public:
  run_state(asio::io_context& ioc, const options& o, result& r)
    : ioc_(ioc), opts_(o), res_(r) {
    req_ = http::request<http::string_body>{http::verb::post, o.path, 11};
    req_.set(http::field::host, o.host);
    req_.set(http::field::content_type, o.content_type);
    if (o.json_length >= 0)
      req_.set("Inference-Header-Content-Length", std::to_string(o.json_length));
    req_.body() = o.body;
    req_.keep_alive(true);
    req_.prepare_payload();
  }

  clock_type::time_point measure_from, stop_at;
  const http::request<http::string_body>& request() const { return req_; }
  void record(clock_type::time_point sent, clock_type::time_point done) {
    if (sent < measure_from || done > stop_at)
      return;
    res_.latencies_us.push_back(std::chrono::duration<double, std::micro>(done - sent).count());
  }
  void error(const std::string& kind, clock_type::time_point at) {
    if (at >= measure_from && at <= stop_at)
      ++res_.errors[kind];
  }
  bool over() const { return clock_type::now() >= stop_at; }
  std::size_t answered() const { return res_.latencies_us.size(); }
  asio::io_context& ioc() { return ioc_; }
  const options& opts() const { return opts_; }

private:
  asio::io_context& ioc_;
  const options& opts_;
  result& res_;
  http::request<http::string_body> req_;
};

/// One connection: sends a request when told (closed loop: again and again).
class connection : public std::enable_shared_from_this<connection> {
public:
  connection(run_state& st, bool closed_loop) : st_(st), stream_(st.ioc()), closed_(closed_loop) {
    buffer_.reserve(1 << 20);
  }
  bool busy() const { return busy_; }

  void send(clock_type::time_point scheduled) {
    busy_ = true;
    sent_ = scheduled;
    if (!connected_)
      return connect();
    write();
  }

private:
  void connect() {
    stream_.expires_after(std::chrono::seconds(10));
    stream_.async_connect(tcp::endpoint{asio::ip::make_address(st_.opts().host), st_.opts().port},
                          [self = shared_from_this()](beast::error_code ec) {
                            if (ec)
                              return self->fail("connect");
                            self->connected_ = true;
                            self->stream_.socket().set_option(tcp::no_delay(true));
                            self->write();
                          });
  }

  void write() {
    stream_.expires_after(std::chrono::seconds(60));
    http::async_write(stream_, st_.request(),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec)
                          return self->fail("write");
                        self->read();
                      });
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(1ull << 30);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec)
                         return self->fail(ec == beast::error::timeout ? "timeout" : "read");
                       auto now = clock_type::now();
                       auto status = self->parser_->get().result_int();
                       if (status == 200)
                         self->st_.record(self->sent_, now);
                       else
                         self->st_.error("http_" + std::to_string(status), now);
                       if (!self->parser_->get().keep_alive())
                         self->reset();
                       self->next();
                     });
  }

  void fail(const char* kind) {
    st_.error(kind, clock_type::now());
    reset();
    next();
  }

  void reset() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    connected_ = false;
  }

  void next() {
    busy_ = false;
    if (closed_ && !st_.over())
      send(clock_type::now());
  }

  run_state& st_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  clock_type::time_point sent_;
  bool connected_ = false;
  bool busy_ = false;
  bool closed_;
};

void progress(run_state& st, const std::string& what, clock_type::time_point start,
              asio::steady_timer& timer, std::size_t& last) {
  timer.expires_after(std::chrono::seconds(1));
  timer.async_wait([&st, what, start, &timer, &last](beast::error_code ec) {
    if (ec || st.over())
      return;
    auto n = st.answered();
    std::fprintf(stderr, "\r[%s] %.0fs: %zu req/s, %zu measured   ", what.c_str(),
                 std::chrono::duration<double>(clock_type::now() - start).count(), n - last, n);
    last = n;
    progress(st, what, start, timer, last);
  });
}

result run_one(const options& o, const std::string& mode, double load, bool show) {
  result r;
  r.label = o.label;
  r.mode = mode;
  r.load = load;
  asio::io_context ioc;
  run_state st{ioc, o, r};
  auto start = clock_type::now();
  st.measure_from = start + std::chrono::duration_cast<clock_type::duration>(
                              std::chrono::duration<double>(o.warmup));
  st.stop_at = st.measure_from + std::chrono::duration_cast<clock_type::duration>(
                                   std::chrono::duration<double>(o.duration));
  std::vector<std::shared_ptr<connection>> conns;
  asio::steady_timer tick{ioc}, prog{ioc}, end{ioc};
  std::size_t last = 0;
  auto what = o.label + " " + mode + "=" + std::to_string(static_cast<int>(load));
  if (show)
    progress(st, what, start, prog, last);
  std::function<void(clock_type::time_point)> issue;
  if (mode == "concurrency") {
    for (int i = 0; i < static_cast<int>(load); ++i) {
      conns.push_back(std::make_shared<connection>(st, true));
      conns.back()->send(clock_type::now());
    }
  } else {
    auto interval = std::chrono::duration_cast<clock_type::duration>(
      std::chrono::duration<double>(1.0 / load));
    issue = [&, interval](clock_type::time_point when) {
      if (when >= st.stop_at)
        return;
      auto it = std::find_if(conns.begin(), conns.end(), [](auto& c) { return !c->busy(); });
      if (it != conns.end())
        (*it)->send(when);
      else if (static_cast<int>(conns.size()) < o.open_connections) {
        conns.push_back(std::make_shared<connection>(st, false));
        conns.back()->send(when);
      } else {
        st.error("no_free_connection", when);
      }
      tick.expires_at(when + interval);
      tick.async_wait([&issue, next = when + interval](beast::error_code ec) {
        if (!ec)
          issue(next);
      });
    };
    issue(clock_type::now());
  }
  end.expires_at(st.stop_at + std::chrono::milliseconds(200));
  end.async_wait([&](beast::error_code) { ioc.stop(); });
  ioc.run();
  if (show)
    std::fprintf(stderr, "\r%80s\r", "");
  r.seconds = o.duration;
  return r;
}

/// One run; a closed loop with --threads T > 1 runs T loops of load/T connections side by side
/// (each on its own I/O thread) and merges what they measured.
result run(const options& o, const std::string& mode, double load) {
  int threads = mode == "concurrency" ? std::max(1, std::min(o.threads, static_cast<int>(load))) : 1;
  std::vector<result> parts(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    int share = static_cast<int>(load) / threads + (t < static_cast<int>(load) % threads ? 1 : 0);
    pool.emplace_back([&, t, share] { parts[t] = run_one(o, mode, share, t == 0); });
  }
  for (auto& th : pool)
    th.join();
  result r = std::move(parts[0]);
  r.load = load;
  for (std::size_t t = 1; t < parts.size(); ++t) {
    r.latencies_us.insert(r.latencies_us.end(), parts[t].latencies_us.begin(),
                          parts[t].latencies_us.end());
    for (auto& kv : parts[t].errors)
      r.errors[kv.first] += kv.second;
  }
  std::sort(r.latencies_us.begin(), r.latencies_us.end());
  return r;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(std::stoi(item));
  return out;
}

std::string errors_text(const result& r) {
  std::string s;
  for (auto& kv : r.errors)
    s += (s.empty() ? "" : " ") + kv.first + "=" + std::to_string(kv.second);
  return s.empty() ? "-" : s;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  std::string body_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") o.host = v();
    else if (a == "--port") o.port = static_cast<uint16_t>(std::stoi(v()));
    else if (a == "--path") o.path = v();
    else if (a == "--body") body_file = v();
    else if (a == "--json-length") o.json_length = std::stol(v());
    else if (a == "--content-type") o.content_type = v();
    else if (a == "--concurrency") o.concurrency = parse_list(v());
    else if (a == "--rate") o.rate = std::stod(v());
    else if (a == "--duration") o.duration = std::stod(v());
    else if (a == "--threads") o.threads = std::stoi(v());
    else if (a == "--warmup") o.warmup = std::stod(v());
    else if (a == "--label") o.label = v();
    else if (a == "--csv") o.csv = v();
    else if (a == "--json") o.json = v();
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  if (body_file.empty()) {
    std::cerr << "--body FILE is required\n";
    return 2;
  }
  std::ifstream in(body_file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  o.body = ss.str();
  if (o.json_length >= 0 && o.content_type == "application/json")
    o.content_type = "application/octet-stream";

  std::vector<result> results;
  if (o.rate > 0)
    results.push_back(run(o, "rate", o.rate));
  else
    for (int c : o.concurrency)
      results.push_back(run(o, "concurrency", c));

  std::printf("%-14s %-12s %7s %10s %9s %9s %9s %9s  %s\n", "label", "mode", "load", "req/s",
              "p50_us", "p90_us", "p99_us", "max_us", "errors");
  for (auto& r : results)
    std::printf("%-14s %-12s %7.0f %10.0f %9.0f %9.0f %9.0f %9.0f  %s\n", r.label.c_str(),
                r.mode.c_str(), r.load, r.throughput(), r.pct(50), r.pct(90), r.pct(99),
                r.latencies_us.empty() ? 0.0 : r.latencies_us.back(), errors_text(r).c_str());
  if (!o.csv.empty()) {
    bool fresh = !std::ifstream(o.csv).good();
    std::ofstream csv(o.csv, std::ios::app);
    if (fresh)
      csv << "label,mode,load,requests_per_s,p50_us,p90_us,p99_us,max_us,errors\n";
    for (auto& r : results)
      csv << r.label << "," << r.mode << "," << r.load << "," << r.throughput() << "," << r.pct(50)
          << "," << r.pct(90) << "," << r.pct(99) << ","
          << (r.latencies_us.empty() ? 0.0 : r.latencies_us.back()) << "," << r.error_total() << "\n";
  }
  if (!o.json.empty()) {
    std::ofstream js(o.json, std::ios::app);
    for (auto& r : results) {
      js << "{\"label\":\"" << r.label << "\",\"mode\":\"" << r.mode << "\",\"load\":" << r.load
         << ",\"requests_per_s\":" << r.throughput() << ",\"p50_us\":" << r.pct(50)
         << ",\"p90_us\":" << r.pct(90) << ",\"p99_us\":" << r.pct(99) << ",\"errors\":{";
      bool first = true;
      for (auto& kv : r.errors) {
        js << (first ? "" : ",") << "\"" << kv.first << "\":" << kv.second;
        first = false;
      }
      js << "}}\n";
    }
  }
  return 0;
}
