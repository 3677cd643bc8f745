// The chaos test (ctest label "chaos", about a minute): concurrent request streams against a model
// of four isolated workers (child processes) while the test keeps crashing, hanging and slowing
// workers (the fault endpoint), SIGKILLs worker processes and reloads the model (its workers one
// at a time). Asserted: every request gets a response, no output is wrong (y = 2x + 1 exactly),
// errors only where a retry budget or a deadline was genuinely used up, every reload answered
// (200, or 500 naming a worker the chaos took down while it came back, which a later load brings
// back), and afterwards every worker is back and serving. It prints a
// report: requests sent, answered, failed by reason, lost; crash-to-ready times; p99 with and
// without faults (ACTORSERVE_CHAOS_REPORT=FILE also writes it to a file).
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "support.hpp"

using namespace actorserve::itest;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int workers = 4;
constexpr int streams = 6;

std::string chaos_config() {
  return R"({"server": {"http": {"port": 0, "io_threads": 2}, "fault_injection": true},
    "models": [{"name": "scale", "backend": "scale", "max_batch_size": 8,
      "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
      "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
      "isolation": "process", "instances": )" + std::to_string(workers) + R"(,
      "execution_timeout_ms": 400, "default_timeout_us": 5000000,
      "retry": {"max_retries": 3},
      "restart": {"max_restarts": 1000, "backoff_initial_ms": 50, "backoff_max_ms": 400,
                  "shutdown_ms": 1000},
      "batching": {"max_queue_delay_us": 500},
      "parameters": {"factor": 2, "bias": 1, "delay_us": 1000}}]})";
}

struct outcome {
  int phase = 0; // 0 baseline, 1 chaos, 2 after
  double latency_ms = 0;
  unsigned status = 0;
  bool wrong = false;
  std::string reason; // for failures
};

std::string classify(unsigned status, const std::string& body) {
  std::string msg;
  try {
    msg = std::string(json::parse(body).as_object().at("error").as_string());
  } catch (...) {
    msg = body;
  }
  if (msg.find("retries (retry.max_retries") != std::string::npos)
    return "retry budget used up";
  if (status == 504 || msg.find("deadline") != std::string::npos)
    return "deadline exceeded";
  return "other: " + std::to_string(status) + " " + msg.substr(0, 160);
}

double pct(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100 * (v.size() - 1) + 0.5))];
}

/// Milliseconds since midnight of a log line's "YYYY-MM-DDTHH:MM:SS.mmm" stamp.
double stamp_ms(const std::string& line) {
  int h = 0, m = 0, s = 0, ms = 0;
  if (std::sscanf(line.c_str(), "%*d-%*d-%*dT%d:%d:%d.%d", &h, &m, &s, &ms) != 4)
    return -1;
  return ((h * 60 + m) * 60 + s) * 1000.0 + ms;
}

/// For each failure the supervisor logged, the time until that worker was ready again.
std::vector<double> recovery_times(const std::string& log) {
  std::vector<double> out;
  std::istringstream in(log);
  std::string line;
  std::map<std::string, double> down_at;
  std::regex failed(R"(child (scale/cpu/\d+) .*restarting in)"), ready(R"(worker (scale/cpu/\d+) is ready)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, failed) && !down_at.count(m[1]))
      down_at[m[1]] = stamp_ms(line);
    else if (std::regex_search(line, m, ready) && down_at.count(m[1])) {
      out.push_back(stamp_ms(line) - down_at[m[1]]);
      down_at.erase(m[1]);
    }
  }
  return out;
}

std::map<int, long> worker_pids(const std::string& log) {
  std::map<int, long> pids;
  std::regex started(R"(worker process scale/cpu/(\d+) started \(pid (\d+)\))");
  for (std::sregex_iterator it(log.begin(), log.end(), started), end; it != end; ++it)
    pids[std::stoi((*it)[1])] = std::stol((*it)[2]);
  return pids;
}


} // namespace

TEST_CASE("chaos: crashes, hangs, slow workers, SIGKILLed worker processes and reloads lose "
          "nothing",
          "[chaos]") {
  server_process srv{write_temp_file("chaos.json", chaos_config())};
  REQUIRE(srv.wait_ready());
  eventually([&] { return ready_workers(srv.port()) == workers; }, std::chrono::seconds(20));
  REQUIRE(ready_workers(srv.port()) == workers);

  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::mutex mtx;
  std::vector<outcome> results;
  std::vector<std::thread> clients;
  for (int t = 0; t < streams; ++t)
    clients.emplace_back([&, t] {
      http_client c{srv.port(), std::chrono::seconds(15)};
      for (int i = 0; !stop; ++i) {
        long v = t * 1'000'000L + i % 1'000'000; // integers: exact in FP32 in and out
        std::ostringstream body;
        body << R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[)" << v << ","
             << v + 1 << "," << v + 2 << "," << v + 3 << "]}]}";
        outcome o;
        o.phase = phase;
        auto t0 = clock_type::now();
        auto r = c.post("/v2/models/scale/infer", body.str());
        o.latency_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        o.status = r.status;
        if (r.status == 200) {
          auto doc = json::parse(r.body).as_object();
          auto& data = doc["outputs"].as_array()[0].as_object()["data"].as_array();
          for (int k = 0; k < 4; ++k)
            o.wrong = o.wrong || data[k].to_number<double>() != 2.0 * static_cast<double>(v + k) + 1;
        } else if (r.status != 0) {
          o.reason = classify(r.status, r.body);
        }
        std::lock_guard<std::mutex> guard{mtx};
        results.push_back(std::move(o));
      }
    });

  std::this_thread::sleep_for(std::chrono::seconds(6)); // baseline, no faults
  phase = 1;
  // Reloads meanwhile, one after another (a load answers once every worker is back).
  std::map<std::string, int> reloads; // by outcome
  std::atomic<bool> reloading{true};
  std::thread reloader([&] {
    http_client c{srv.port(), std::chrono::seconds(30)};
    while (reloading) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      auto r = c.post("/v2/repository/models/scale/load", "");
      std::lock_guard<std::mutex> guard{mtx};
      if (r.status == 200)
        ++reloads["200"];
      else if (r.status == 500 && r.body.find("did not come back from its reload") != std::string::npos)
        ++reloads["500 (a worker did not come back)"];
      else
        ++reloads["other: " + std::to_string(r.status) + " " + r.body.substr(0, 160)];
    }
  });
  std::map<std::string, int> faults;
  http_client admin{srv.port(), std::chrono::seconds(5)};
  std::mt19937 rng(42);
  const char* kinds[] = {"crash", "hang", "slow", "sigkill"};
  auto chaos_end = clock_type::now() + std::chrono::seconds(36);
  for (int k = 0; clock_type::now() < chaos_end; ++k) {
    std::string kind = kinds[k % 4];
    int w = static_cast<int>(rng() % workers);
    if (kind == "sigkill") {
      auto pids = worker_pids(srv.log());
      if (pids.count(w) && ::kill(static_cast<pid_t>(pids[w]), SIGKILL) == 0)
        ++faults[kind];
    } else {
      auto r = admin.post("/v2/admin/faults", R"({"model":"scale","worker":"scale/cpu/)"
                                                + std::to_string(w) + R"(","fault":")" + kind
                                                + R"(","count":1})");
      if (r.status == 200)
        ++faults[kind];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  }
  reloading = false;
  reloader.join();
  // Recovery: a last load brings back any worker a reload kept down; every worker is back, and
  // then everything succeeds.
  auto last_load = admin.post("/v2/repository/models/scale/load", "").status;
  eventually([&] { return ready_workers(srv.port()) == workers; }, std::chrono::seconds(15));
  int back = ready_workers(srv.port());
  std::this_thread::sleep_for(std::chrono::seconds(1)); // faults armed but not yet hit drain out
  phase = 2;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  stop = true;
  for (auto& c : clients)
    c.join();

  std::map<std::string, int> failed;
  int lost = 0, wrong = 0, answered = 0, after_ok = 0, after_total = 0;
  std::vector<double> lat[3];
  for (auto& o : results) {
    if (o.status == 0)
      ++lost;
    else
      ++answered;
    if (o.wrong)
      ++wrong;
    if (o.status != 200 && o.status != 0)
      ++failed[o.reason];
    if (o.status == 200)
      lat[o.phase].push_back(o.latency_ms);
    if (o.phase == 2) {
      ++after_total;
      after_ok += o.status == 200;
    }
  }
  auto rec = recovery_times(srv.log());
  std::ostringstream report;
  report << "chaos report (" << workers << " isolated workers, " << streams << " streams)\n"
         << "  faults injected:";
  for (auto& [k, n] : faults)
    report << " " << k << "=" << n;
  report << "\n  reloads:";
  for (auto& [k, n] : reloads)
    report << " " << n << " x " << k << ";";
  report << " the last load after the chaos: " << last_load;
  report << "\n  requests sent " << results.size() << ", answered " << answered << ", lost " << lost
         << ", wrong outputs " << wrong << "\n  failed:";
  if (failed.empty())
    report << " none";
  for (auto& [why, n] : failed)
    report << "\n    " << n << " x " << why;
  report << "\n  crash/kill/hang -> replacement ready (ms): n=" << rec.size() << " p50 "
         << pct(rec, 50) << " p90 " << pct(rec, 90) << " max " << pct(rec, 100)
         << "\n  latency p50/p99 ms: without faults " << pct(lat[0], 50) << "/" << pct(lat[0], 99)
         << ", during faults " << pct(lat[1], 50) << "/" << pct(lat[1], 99) << ", after "
         << pct(lat[2], 50) << "/" << pct(lat[2], 99) << "; max during faults " << pct(lat[1], 100)
         << "\n  workers ready after the chaos: "
         << back << " of " << workers << "; requests after it: " << after_ok << " of "
         << after_total << " succeeded\n";
  std::printf("%s", report.str().c_str());
  if (const char* f = std::getenv("ACTORSERVE_CHAOS_REPORT"))
    std::ofstream(f) << report.str();
  INFO(report.str());
  CHECK(lost == 0);
  CHECK(wrong == 0);
  for (auto& [why, n] : failed)
    CHECK(why.rfind("other", 0) != 0); // only retry budgets and deadlines
  CHECK(faults["sigkill"] > 0);
  CHECK(faults["crash"] > 0);
  CHECK(faults["hang"] > 0);
  CHECK(reloads["200"] > 0);
  for (auto& [k, n] : reloads)
    CHECK(k.rfind("other", 0) != 0);
  CHECK(last_load == 200);
  CHECK(back == workers);
  CHECK(after_total > 0);
  CHECK(after_ok == after_total);
}
