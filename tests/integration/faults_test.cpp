// Faults on the real process: crashes, restarts and give-ups, the drain on SIGTERM, injected
// faults and retries, poison requests, hangs, circuit breakers and isolated workers.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "scale_model.hpp"
#include "support.hpp"

using namespace actorserve::itest;

TEST_CASE("a crashed worker is restarted and serving resumes", "[integration]") {
  // A request that crashes every worker it meets would use up its retries on each restart:
  // this test is about restarts, so retries are off.
  server_process srv{write_temp_file("crash.json", scale_config(R"(, "retry": {"max_retries": 0})",
                                                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  check_still_serving(srv.port());
  for (int round = 0; round < 2; ++round) {
    auto r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")"));
    CHECK(r.status == 500);
    CHECK(error_of(r).find("worker scale/cpu/0") != std::string::npos);
    CHECK(error_of(r).find("died") != std::string::npos);
    // Requests meanwhile wait for the restarted worker (it is "starting"), then succeed.
    check_still_serving(srv.port());
  }
  auto r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "throw")"));
  CHECK(r.status == 500);
  CHECK(error_of(r) == "worker scale/cpu/0: fault injection: backend exception");
  check_still_serving(srv.port());
  CHECK(srv.log().find("restarting in") != std::string::npos);
}

TEST_CASE("a worker that crashes too often exhausts its supervisors: the model stops, the node "
          "serves on", "[integration][supervision]") {
  server_process srv{write_temp_file(
    "giveup.json", scale_config(R"(, "restart": {"max_restarts": 1, "period_s": 60, "backoff_initial_ms": 10,
                                                 "model_max_restarts": 0},
                                    "retry": {"max_retries": 0})",
                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
  check_still_serving(srv.port()); // restart 1 of 1
  CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
  // No restart left in the workers' supervisor nor in the model's: the model stops (the root
  // does not restart it: server.supervision.model_restart is "temporary" by default), is not
  // ready, and requests fail fast with 503.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  http_response ready;
  do {
    ready = c.get("/v2/models/scale/ready");
  } while (ready.status != 503 && std::chrono::steady_clock::now() < deadline);
  CHECK(ready.status == 503);
  CHECK(c.get("/v2/health/ready").status == 503);
  // (the model's supervisor stops the batcher a moment after its workers stopped)
  http_response r;
  do {
    r = c.post("/v2/models/scale/infer", infer_body());
  } while (r.status == 503 && error_of(r).find("not available") == std::string::npos
           && std::chrono::steady_clock::now() < deadline);
  INFO("last answer: " << r.status << " " << error_of(r));
  CHECK(r.status == 503);
  CHECK(error_of(r).find("model 'scale' is not available") != std::string::npos);
  CHECK(c.get("/v2/health/live").status == 200); // the process itself lives on
  eventually([&] { return srv.log().find("is no longer served") != std::string::npos; },
             std::chrono::seconds(5));
  CHECK(srv.log().find("supervisor 'workers scale' gave up: more than 1 restarts within 60 s")
        != std::string::npos);
  CHECK(srv.log().find("supervisor 'model scale' gave up") != std::string::npos);
  CHECK(srv.log().find("model 'scale' is no longer served") != std::string::npos);
}

TEST_CASE("a model its supervisors gave up is started again after a crash-loop back-off that "
          "doubles", "[integration][supervision]") {
  server_process srv{write_temp_file(
    "crashloop.json",
    scale_config(R"(, "restart": {"max_restarts": 0, "backoff_initial_ms": 10, "model_max_restarts": 0},
                    "retry": {"max_retries": 0})",
                 R"(, "fault_injection": true,
                    "supervision": {"model_cooldown_ms": 1000, "model_cooldown_max_ms": 4000})"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto metric = [&](const std::string& name) {
    return series(c.get("/metrics").body, name + R"({model="scale"})");
  };
  auto crash_and_give_up = [&](int in_a_row) {
    INFO("give-up " << in_a_row);
    CHECK(c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")")).status == 500);
    // (no restart left anywhere: the model stops at once, then waits out its cool-down; for a
    // moment before the root records that, readiness says only "not ready")
    REQUIRE(eventually([&] {
      auto r = c.get("/v2/models/scale/ready");
      return r.status == 503 && r.body.find("crash-loop back-off") != std::string::npos;
    }, std::chrono::seconds(5)));
    auto ready = c.get("/v2/models/scale/ready");
    CHECK(error_of(ready).find("model 'scale' is not available: it is in crash-loop back-off, "
                               "its supervisors gave up (")
          == 0);
    CHECK(error_of(ready).find("(give-up " + std::to_string(in_a_row) + " in a row)")
          != std::string::npos);
    auto r = c.post("/v2/models/scale/infer", infer_body());
    CHECK(r.status == 503);
    CHECK(error_of(r).find("crash-loop back-off") != std::string::npos);
    CHECK(c.get("/v2/health/ready").status == 503);
    CHECK(metric("actorserve_model_crash_loop") == 1);
    CHECK(metric("actorserve_model_give_ups_total") == in_a_row);
    // Back after its cool-down, with no request or operator needed.
    CHECK(eventually([&] { return c.get("/v2/models/scale/ready").status == 200; },
                     std::chrono::seconds(10)));
    check_still_serving(srv.port());
    CHECK(metric("actorserve_model_crash_loop") == 0);
  };
  crash_and_give_up(1);
  CHECK(srv.log().find("model 'scale' is no longer served: ") != std::string::npos);
  CHECK(srv.log().find("it is started again in 1.0 s (crash-loop back-off, give-up 1 in a row)")
        != std::string::npos);
  crash_and_give_up(2); // at once again: the wait doubles
  CHECK(srv.log().find("it is started again in 2.0 s (crash-loop back-off, give-up 2 in a row)")
        != std::string::npos);
  CHECK(c.get("/v2/health/ready").status == 200);
}

TEST_CASE("SIGTERM drains: requests in flight are answered, new ones get 503, then the process "
          "exits 0", "[integration][shutdown]") {
  server_process srv{write_temp_file(
    "drain.json", scale_config(R"(, "batching": {"max_queue_delay_us": 0})",
                               R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  // Connections opened before the signal: one for readiness, one for a late request.
  http_client ready_probe{srv.port()}, late{srv.port()};
  REQUIRE(ready_probe.get("/v2/health/live").status == 200);
  REQUIRE(late.get("/v2/health/live").status == 200);
  // Four requests, each in a batch the worker makes 300 ms slow: in flight for up to 1.2 s.
  std::vector<http_response> answers(4);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      answers[i] = http_client{srv.port()}.post("/v2/models/scale/infer",
                                                infer_body(R"("actorserve_fault": "slow")"));
    });
  REQUIRE(eventually([&] {
    auto t = http_client{srv.port()}.get("/metrics").body;
    return series(t, R"(actorserve_requests_in_flight{model="scale"})") == 4;
  }, std::chrono::seconds(5)));
  srv.signal(SIGTERM);
  REQUIRE(eventually([&] { return srv.log().find("draining (") != std::string::npos; },
                     std::chrono::seconds(5)));
  auto r = ready_probe.get("/v2/health/ready");
  CHECK(r.status == 503);
  CHECK(r.headers["connection"] == "close");
  r = late.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 503);
  CHECK(error_of(r).find("shutting down") != std::string::npos);
  CHECK(r.headers["retry-after"] == "1");
  CHECK(http_client{srv.port(), std::chrono::seconds(2)}.get("/v2/health/live").status == 0); // not accepted
  for (auto& t : clients)
    t.join();
  for (auto& a : answers) {
    CHECK(a.status == 200);
    CHECK(a.body.find("[3,5,7,9]") != std::string::npos);
  }
  // It exits by itself once they are answered. (Not stop(): its SIGTERM would be a second signal,
  // which ends the drain at once, possibly between a client reading its answer and the server
  // counting that request done: slow under the sanitizers.)
  CHECK(eventually([&] { return !srv.running(); }, std::chrono::seconds(10)));
  CHECK(srv.stop() == 0);
  CHECK(srv.log().find("still unanswered") == std::string::npos);
}

TEST_CASE("the drain ends at drain_timeout_ms even with a request still running",
          "[integration][shutdown]") {
  auto cfg = scale_config("", R"(, "fault_injection": true)");
  cfg.replace(cfg.find(R"("max_body_bytes")"), 0, R"("drain_timeout_ms": 50, )");
  server_process srv{write_temp_file("drain_bound.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_response answer;
  std::thread client([&] {
    answer = http_client{srv.port()}.post("/v2/models/scale/infer",
                                          infer_body(R"("actorserve_fault": "slow")"));
  });
  REQUIRE(eventually([&] {
    auto t = http_client{srv.port()}.get("/metrics").body;
    return series(t, R"(actorserve_requests_in_flight{model="scale"})") == 1;
  }, std::chrono::seconds(5)));
  CHECK(srv.stop() == 0);
  client.join();
  // The batch sleeps 300 ms; the drain gave up before it ended and closed the connection.
  CHECK(answer.status == 0);
  CHECK(srv.log().find("1 requests still unanswered at the end of the drain") != std::string::npos);
}

TEST_CASE("the fault endpoint is off unless the deployment enables fault injection",
          "[integration][faults]") {
  server_process srv{write_temp_file("nofaults.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto r = arm(srv.port(), R"({"model":"scale","fault":"crash"})");
  CHECK(r.status == 404);
  CHECK(error_of(r).find("disabled") != std::string::npos);
}

TEST_CASE("a worker crash is retried on another worker and the client never sees it",
          "[integration][faults][retry]") {
  server_process srv{write_temp_file(
    // (linger_us 0: batches in turn, so that one lands on the armed worker)
    "retry.json", scale_config(R"(, "instances": 2, "max_batch_size": 1, "linger_us": 0,
                                  "batching": {"max_queue_delay_us": 0})",
                               R"(, "fault_injection": true)"))};
  // /v2/health/ready turns true with the first worker; a fault aimed at a named worker needs
  // that worker ready.
  REQUIRE(eventually([&] { return ready_workers(srv.port()) >= 2; }, std::chrono::seconds(20)));
  auto armed = arm(srv.port(), R"({"model":"scale","worker":"scale/cpu/0","fault":"crash"})");
  REQUIRE(armed.status == 200);
  CHECK(parse(armed)["worker"] == "scale/cpu/0");
  CHECK(arm(srv.port(), R"({"model":"scale","worker":"scale/cpu/9","fault":"crash"})").status == 400);
  CHECK(arm(srv.port(), R"({"model":"scale","fault":"melt"})").status == 400);
  for (int i = 0; i < 6; ++i)
    check_still_serving(srv.port()); // the crashed batch's request is answered by scale/cpu/1
  http_client c{srv.port()};
  auto t = c.get("/metrics").body;
  CHECK(series(t, R"(actorserve_retries_total{model="scale"})") == 1);
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="success"})") == 6);
  CHECK(series(t, R"(actorserve_requests_total{model="scale",outcome="worker_failed"})") == 0);
  CHECK(srv.log().find("retrying (attempt 2 of 3)") != std::string::npos);
}

TEST_CASE("a request the model throws on fails alone, the requests batched with it are answered",
          "[integration][faults][retry]") {
  // One worker, as on a single GPU: before, the batch's other requests waited for another
  // worker until their deadline and got 504.
  server_process srv{write_temp_file(
    "poison.json", scale_config(R"(, "batching": {"max_queue_delay_us": 20000})",
                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  std::vector<http_response> answers(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] {
      http_client c{srv.port()};
      auto data = "[" + std::to_string(i) + ",0,0,0]";
      answers[i] = c.post("/v2/models/scale/infer",
                          infer_body(i == 3 ? R"("actorserve_fault": "throw")" : "", data));
    });
  for (auto& t : clients)
    t.join();
  for (int i = 0; i < 8; ++i) {
    INFO("request " << i << ": " << answers[i].body);
    if (i == 3) {
      CHECK(answers[i].status == 500);
      CHECK(error_of(answers[i]).find("fault injection: backend exception") != std::string::npos);
      continue;
    }
    REQUIRE(answers[i].status == 200);
    CHECK(json::serialize(parse(answers[i])["outputs"].as_array()[0].as_object()["data"])
          == "[" + std::to_string(2 * i + 1) + ",1,1,1]");
  }
  CHECK(srv.log().find("retrying them in two halves") != std::string::npos);
  CHECK(srv.log().find("circuit breaker") == std::string::npos);
  check_still_serving(srv.port());
}

TEST_CASE("a hung worker is detected, its request retried elsewhere and the worker replaced",
          "[integration][faults][hang]") {
  server_process srv{write_temp_file(
    // (linger_us 0: batches in turn, so that one lands on the armed worker)
    "hang.json", scale_config(R"(, "instances": 2, "max_batch_size": 1, "execution_timeout_ms": 300,
                                 "linger_us": 0,
                                  "batching": {"max_queue_delay_us": 0})",
                              R"(, "fault_injection": true)"))};
  REQUIRE(eventually([&] { return ready_workers(srv.port()) >= 2; }, std::chrono::seconds(20)));
  REQUIRE(arm(srv.port(), R"({"model":"scale","worker":"scale/cpu/0","fault":"hang"})").status == 200);
  auto t0 = std::chrono::steady_clock::now();
  // Batches go round robin: one of two requests lands on scale/cpu/0, hangs there and is
  // answered by scale/cpu/1 after execution_timeout_ms.
  check_still_serving(srv.port());
  check_still_serving(srv.port());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  // The supervisor starts a replacement for the hung worker; both are ready again.
  http_client c{srv.port()};
  std::string t;
  eventually([&] {
    t = c.get("/metrics").body;
    // (Both: the state reads "ready" too in the moment before the hang is handled.)
    return series(t, R"(actorserve_worker_state{device="cpu",model="scale",worker="scale/cpu/0",state="ready"})") == 1
           && series(t, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 1;
  }, std::chrono::seconds(10));
  CHECK(series(t, R"(actorserve_worker_state{device="cpu",model="scale",worker="scale/cpu/0",state="ready"})") == 1);
  CHECK(series(t, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 1);
  CHECK(srv.log().find("worker hung") != std::string::npos);
  for (int i = 0; i < 4; ++i)
    check_still_serving(srv.port());
}

TEST_CASE("failing batches open a worker's breaker and the model fails fast with 503",
          "[integration][faults][breaker]") {
  server_process srv{write_temp_file(
    "breaker.json", scale_config(R"(, "max_batch_size": 1, "retry": {"max_retries": 0},
                                     "breaker": {"failure_threshold": 2, "reset_timeout_ms": 400},
                                     "batching": {"max_queue_delay_us": 0})",
                                 R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  REQUIRE(arm(srv.port(), R"({"model":"scale","fault":"throw","count":2})").status == 200);
  http_client c{srv.port()};
  CHECK(c.post("/v2/models/scale/infer", infer_body()).status == 500);
  CHECK(c.post("/v2/models/scale/infer", infer_body()).status == 500);
  auto r = c.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 503);
  CHECK(r.headers["retry-after"] == "1");
  CHECK(error_of(r).find("open circuit breaker") != std::string::npos);
  // Answered 503 at once until reset_timeout_ms (400) has passed; then a probe goes through,
  // succeeds and closes the breaker.
  CHECK(eventually([&] { return c.post("/v2/models/scale/infer", infer_body()).status == 200; },
                   std::chrono::seconds(5)));
  check_still_serving(srv.port());
  auto t = c.get("/metrics").body;
  CHECK(series(t, R"(actorserve_breaker_transitions_total{device="cpu",model="scale",worker="scale/cpu/0",to="open"})") == 1);
  CHECK(series(t, R"(actorserve_breaker_transitions_total{device="cpu",model="scale",worker="scale/cpu/0",to="closed"})") == 1);
}

TEST_CASE("isolated workers: a SIGKILLed one is replaced by a new process, a hung one is killed",
          "[integration][isolation]") {
  server_process srv{write_temp_file(
    "isolated.json",
    scale_config(R"(, "isolation": "process", "instances": 2, "execution_timeout_ms": 300)",
                 R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  auto wait_for = [](const std::function<bool()>& condition) {
    return eventually(condition, std::chrono::seconds(15));
  };
  auto count = [&](const std::string& what) { return occurrences(srv.log(), what); };
  // (Both workers first: a kill before cpu/0 joined once would leave its count at 1 below.)
  REQUIRE(wait_for([&] {
    return count("worker scale/cpu/0 is ready") == 1 && count("worker scale/cpu/1 is ready") == 1;
  }));
  auto victim = isolated_pid(srv.log(), "scale/cpu/0");
  REQUIRE(process_alive(victim));
  REQUIRE(::kill(static_cast<pid_t>(victim), SIGKILL) == 0);
  check_still_serving(srv.port()); // the other worker answers meanwhile
  CHECK(wait_for([&] { return count("worker scale/cpu/0 is ready") == 2; }));
  auto replacement = isolated_pid(srv.log(), "scale/cpu/0");
  CHECK(replacement != victim);
  CHECK(process_alive(replacement));
  CHECK(srv.log().find("worker process scale/cpu/0 (pid " + std::to_string(victim)
                       + ") killed by signal 9") != std::string::npos);
  // A hang: the request is retried on the other worker; the stuck process is killed, not kept.
  auto r = c.post("/v2/admin/faults", R"({"model": "scale", "worker": "scale/cpu/1", "fault": "hang"})");
  REQUIRE(r.status == 200);
  auto stuck = isolated_pid(srv.log(), "scale/cpu/1");
  for (int i = 0; i < 4; ++i)
    check_still_serving(srv.port());
  CHECK(wait_for([&] { return !process_alive(stuck); }));
  CHECK(wait_for([&] { return count("worker scale/cpu/1 is ready") == 2; }));
  check_still_serving(srv.port());
  // Each process's batches show under its worker in the node's /metrics, and they add up to
  // the model's executed batches (the hung one's batch, never finished, counts nowhere).
  auto t = c.get("/metrics").body;
  auto worker_batches = [&](const std::string& w) {
    return series(t, R"(actorserve_batches_total{device="cpu",model="scale",worker=")" + w + "\"}");
  };
  auto doc = parse(c.get("/v2/models/scale/stats"));
  auto executed = doc["model_stats"].as_array().at(0).as_object()["execution_count"].to_number<double>();
  CHECK(worker_batches("scale/cpu/0") >= 1);
  CHECK(worker_batches("scale/cpu/0") + worker_batches("scale/cpu/1") == executed);
}

TEST_CASE("isolated workers take batch inputs through shared memory, a batch too large for it "
          "goes over the connection", "[integration][isolation]") {
  // 64 bytes of shared memory: one request of 4 floats fits, a batch of several does not.
  auto run = [](const std::string& shm) {
    server_process srv{write_temp_file(
      "shm" + shm + ".json",
      scale_config(R"(, "isolation": "process", "isolation_shm_bytes": )" + shm
                   + R"(, "batching": {"max_queue_delay_us": 50000})"))};
    REQUIRE(srv.wait_ready());
    REQUIRE(eventually([&] { return ready_workers(srv.port()) == 1; }, std::chrono::seconds(15)));
    // Alone (a batch of one), then 8 at once (one batch of up to 8): every answer its own.
    check_still_serving(srv.port());
    std::atomic<int> ok{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 8; ++i)
      clients.emplace_back([&, i] {
        auto v = std::to_string(i);
        auto r = http_client{srv.port()}.post("/v2/models/scale/infer",
                                              infer_body("", "[" + v + ",1,2," + v + "]"));
        auto want = std::to_string(2 * i + 1);
        if (r.status == 200 && r.body.find("[" + want + ",3,5," + want + "]") != std::string::npos)
          ++ok;
      });
    for (auto& t : clients)
      t.join();
    CHECK(ok == 8);
    check_still_serving(srv.port());
    return srv.log();
  };
  auto log = run("64");
  CHECK(occurrences(log, "worker scale/cpu/0 takes its batches' inputs through 64 bytes of shared "
                         "memory") == 1);
  CHECK(occurrences(log, "does not fit worker scale/cpu/0's shared memory") == 1); // said once
  log = run("0"); // off: every batch over the connection
  CHECK(occurrences(log, "shared memory") == 0);
}

TEST_CASE("isolated workers stay connected through idle periods between bursts of load",
          "[integration][isolation]") {
  // The node drops a connection silent for timeout_ms; the worker processes' heartbeats keep
  // theirs up while no batch crosses it. Short settings here stand for the defaults (500 ms
  // heartbeats, 3 s timeout): each idle period below is seven timeouts long.
  server_process srv{write_temp_file(
    "isolated_idle.json",
    scale_config(R"(, "isolation": "process", "instances": 2)",
                 R"(, "cluster": {"heartbeat_ms": 100, "timeout_ms": 300})"))};
  REQUIRE(srv.wait_ready());
  REQUIRE(eventually([&] { return ready_workers(srv.port()) == 2; }, std::chrono::seconds(15)));
  auto pids = [&] {
    return std::make_pair(isolated_pid(srv.log(), "scale/cpu/0"), isolated_pid(srv.log(), "scale/cpu/1"));
  };
  auto before = pids();
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::seconds(2)); // idle: nothing crosses the links
    INFO("after idle period " << round + 1);
    http_client c{srv.port()};
    CHECK(c.get("/v2/models/scale/ready").status == 200);
    for (int i = 0; i < 20; ++i) // a burst
      check_still_serving(srv.port());
    CHECK(ready_workers(srv.port()) == 2);
  }
  auto metrics = http_client{srv.port()}.get("/metrics").body;
  for (std::string w : {"scale/cpu/0", "scale/cpu/1"})
    CHECK(series(metrics, R"(actorserve_worker_restarts_total{device="cpu",model="scale",worker=")"
                            + w + "\"}")
          == 0);
  CHECK(pids() == before); // the same processes throughout
  CHECK(occurrences(srv.log(), "lost its node") == 0);
}
