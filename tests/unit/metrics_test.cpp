#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include <boost/json.hpp>

#include "runtime/autoscale_policy.hpp"
#include "runtime/metrics.hpp"
#include "runtime/stage_metrics.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;

TEST_CASE("atomic histograms count into the first bucket whose bound is not below the value",
          "[metrics]") {
  atomic_histogram h{{1, 2, 4}};
  for (double v : {0.5, 1.0, 1.5, 4.0, 9.0})
    h.observe(v);
  auto s = h.read();
  CHECK(s.cumulative == std::vector<uint64_t>{2, 3, 4, 5});
  CHECK(s.count == 5);
  CHECK(s.sum == Approx(16.0));
}

TEST_CASE("the Prometheus text names series by model, outcome and worker", "[metrics]") {
  deployment_config cfg;
  auto m = small_model(4);
  m.instances = 2;
  cfg.models.push_back(m);
  metrics stats{cfg};
  auto* mm = stats.model("m");
  REQUIRE(mm);
  CHECK_FALSE(stats.model("other"));
  mm->count_request(errc::none);
  mm->count_request(errc::none);
  mm->count_request(errc::deadline_exceeded);
  mm->batch_rows.observe(3);
  REQUIRE(mm->worker("m/cpu/1"));
  mm->worker("m/cpu/1")->set_phase(worker_phase::ready);
  mm->worker("m/cpu/1")->restarts.fetch_add(2);
  stats.count_http_response(404);
  auto text = stats.prometheus_text();
  auto has = [&](const std::string& line) {
    INFO(line);
    CHECK(text.find(line + "\n") != std::string::npos);
  };
  has("# TYPE actorserve_requests_total counter");
  has("actorserve_requests_total{model=\"m\",outcome=\"success\"} 2");
  has("actorserve_requests_total{model=\"m\",outcome=\"deadline_exceeded\"} 1");
  has("actorserve_batch_size_bucket{model=\"m\",le=\"2\"} 0");
  has("actorserve_batch_size_bucket{model=\"m\",le=\"4\"} 1");
  has("actorserve_batch_size_count{model=\"m\"} 1");
  has("actorserve_worker_state{device=\"cpu\",model=\"m\",worker=\"m/cpu/1\",state=\"ready\"} 1");
  has("actorserve_worker_state{device=\"cpu\",model=\"m\",worker=\"m/cpu/0\",state=\"ready\"} 0");
  has("actorserve_worker_restarts_total{device=\"cpu\",model=\"m\",worker=\"m/cpu/1\"} 2");
  has("actorserve_http_responses_total{code=\"404\"} 1");
  CHECK(text.find("invalid_config") == std::string::npos);
}

TEST_CASE("a cluster front has no local worker series, other nodes' workers are added as they join",
          "[metrics]") {
  deployment_config cfg;
  cfg.models.push_back(small_model(4));
  cfg.server.cluster.role = cluster_role::front;
  metrics stats{cfg};
  auto* mm = stats.model("m");
  REQUIRE(mm);
  CHECK_FALSE(mm->worker("m/cpu/0")); // it runs no worker of its own: no series stuck "starting"
  CHECK(stats.prometheus_text().find("worker=") == std::string::npos);
  auto* w = mm->add_worker("m/w1/cuda:0/0", "cuda:0");
  REQUIRE(w);
  CHECK(mm->add_worker("m/w1/cuda:0/0", "cuda:0") == w); // once per name
  CHECK(mm->worker("m/w1/cuda:0/0") == w);
  CHECK_FALSE(w->own); // another node's: the batcher keeps its state
  w->set_phase(worker_phase::ready);
  w->batches.fetch_add(3);
  auto text = stats.prometheus_text();
  CHECK(text.find("actorserve_batches_total{device=\"cuda:0\",model=\"m\",worker=\"m/w1/cuda:0/0\"} 3\n")
        != std::string::npos);
  CHECK(text.find("actorserve_worker_state{device=\"cuda:0\",model=\"m\",worker=\"m/w1/cuda:0/0\",state=\"ready\"} 1\n")
        != std::string::npos);

  cfg.server.cluster.role = cluster_role::both; // a standalone node: its own workers from the start
  metrics standalone{cfg};
  REQUIRE(standalone.model("m")->worker("m/cpu/0"));
  CHECK(standalone.model("m")->worker("m/cpu/0")->own); // its supervisor keeps its state
}

TEST_CASE("statistics follow Triton's statistics extension", "[metrics]") {
  deployment_config cfg;
  cfg.models.push_back(small_model(4));
  metrics stats{cfg};
  auto* mm = stats.model("m");
  mm->success.add(1000);
  mm->execution_count = 1;
  mm->inference_count = 2;
  mm->by_batch_size[2].compute_infer.add(500);
  auto doc = boost::json::parse(stats.statistics_json("m")).as_object();
  auto& s = doc["model_stats"].as_array().at(0).as_object();
  CHECK(s["name"] == "m");
  CHECK(s["inference_count"] == 2);
  CHECK(s["execution_count"] == 1);
  CHECK(boost::json::serialize(s["inference_stats"].as_object()["success"]) == R"({"count":1,"ns":1000})");
  auto& b = s["batch_stats"].as_array();
  REQUIRE(b.size() == 1);
  CHECK(b[0].as_object()["batch_size"] == 2);
  CHECK(boost::json::parse(stats.statistics_json("nope")).as_object()["model_stats"].as_array().empty());
}

namespace {

/// One small model and one event queue, "jobs".
deployment_config with_queue() {
  deployment_config cfg;
  cfg.models.push_back(small_model(4));
  queue_config q;
  q.name = q.stream = "jobs";
  cfg.server.queues.push_back(q);
  cfg.server.tracing.enabled = true; // (the span recorder's series)
  return cfg;
}

} // namespace

TEST_CASE("every series the Grafana dashboard queries is one actorserve exports", "[metrics]") {
  std::ifstream in(std::string(ACTORSERVE_SOURCE_DIR) + "/config/grafana/actorserve-dashboard.json");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  auto dash = boost::json::parse(ss.str()).as_object();
  metrics stats{with_queue()};
  stats.count_http_response(200);
  stats.count_grpc_response(0);
  stats.queue("jobs")->answers[200] = 1;
  stats.model("m")->desired_instances = 1; // (its autoscaling series: as with autoscaling on)
  stage_metrics::for_stage("dashboard/0/fetch", "fetch").observe(1'000'000, 10, errc::forbidden);
  auto text = stats.prometheus_text();
  std::regex name{"actorserve_[a-z_]+"};
  int queries = 0;
  for (auto& p : dash["panels"].as_array())
    for (auto& t : p.as_object().at("targets").as_array()) {
      std::string expr(t.as_object().at("expr").as_string());
      ++queries;
      for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) {
        auto series = it->str();
        if (series.rfind("actorserve_gpu_", 0) == 0)
          continue; // exported by GPU nodes only (NVML)
        INFO(series);
        CHECK(text.find("\n" + series) != std::string::npos);
      }
    }
  CHECK(queries >= 8);
}

TEST_CASE("stage series: per stage step, item durations, bytes and in flight for fetches, "
          "failures by reason",
          "[metrics][stage]") {
  metrics stats{with_queue()};
  auto& fetch = stage_metrics::for_stage("p/0/fetch", "fetch");
  CHECK(&stage_metrics::for_stage("p/0/fetch", "fetch") == &fetch); // (one per stage step)
  fetch.in_flight = 3;
  fetch.observe(20'000'000, 1000, errc::none);
  fetch.observe(5'000'000, 0, errc::upstream_failed);
  stage_metrics::for_stage("p/1/preprocess", "preprocess").observe(4'000'000, 0, errc::none);
  auto text = stats.prometheus_text();
  CHECK(text.find("actorserve_stage_item_duration_seconds_count{kind=\"fetch\",stage=\"p/0/fetch\"} 2")
        != std::string::npos);
  CHECK(text.find("actorserve_stage_bytes_total{kind=\"fetch\",stage=\"p/0/fetch\"} 1000")
        != std::string::npos);
  CHECK(text.find("actorserve_stage_items_in_flight{kind=\"fetch\",stage=\"p/0/fetch\"} 3")
        != std::string::npos);
  CHECK(text.find("actorserve_stage_failures_total{kind=\"fetch\",stage=\"p/0/fetch\","
                  "reason=\"upstream_failed\"} 1")
        != std::string::npos);
  CHECK(text.find("actorserve_stage_item_duration_seconds_count{kind=\"preprocess\","
                  "stage=\"p/1/preprocess\"} 1")
        != std::string::npos);
  // (Bytes and in flight are a fetch stage's only.)
  CHECK(text.find("actorserve_stage_bytes_total{kind=\"preprocess\"") == std::string::npos);
}

TEST_CASE("queue and gRPC series: per queue from the start, answers and gRPC codes once seen",
          "[metrics]") {
  metrics stats{with_queue()};
  CHECK(stats.queue("nope") == nullptr);
  auto text = stats.prometheus_text();
  CHECK(text.find("actorserve_queue_entries_read_total{queue=\"jobs\"} 0") != std::string::npos);
  CHECK(text.find("actorserve_queue_answers_total") == std::string::npos);
  CHECK(text.find("actorserve_grpc_responses_total") == std::string::npos);
  stats.queue("jobs")->answers[404] += 2;
  stats.count_grpc_response(5);
  stats.count_grpc_response(99); // (not a gRPC code: not counted)
  text = stats.prometheus_text();
  CHECK(text.find("actorserve_queue_answers_total{queue=\"jobs\",code=\"404\"} 2")
        != std::string::npos);
  CHECK(text.find("actorserve_grpc_responses_total{code=\"5\"} 1") != std::string::npos);
}

namespace {

struct fake_gpus : gpu_monitor {
  std::vector<gpu_sample> sample() override {
    return {gpu_sample{0, "NVIDIA H200", 0.75, 1ull << 30, 140ull << 30}};
  }
};

} // namespace

TEST_CASE("GPU series appear only when a GPU monitor samples devices", "[metrics][gpu]") {
  deployment_config cfg;
  cfg.models.push_back(small_model(4));
  metrics stats{cfg};
  auto none = stats.prometheus_text();
  CHECK(none.find("actorserve_gpu_") == std::string::npos);
  stats.set_gpu_monitor(std::make_unique<fake_gpus>());
  auto text = stats.prometheus_text();
  CHECK(text.find("actorserve_gpu_utilization_ratio{device=\"cuda:0\",name=\"NVIDIA H200\"} 0.75\n")
        != std::string::npos);
  CHECK(text.find("actorserve_gpu_memory_total_bytes{device=\"cuda:0\",name=\"NVIDIA H200\"} 150323855360\n")
        != std::string::npos);
}

TEST_CASE("without an NVIDIA driver there is no GPU monitor", "[metrics][gpu]") {
  auto m = gpu_monitor::open();
  if (m) {
    WARN("an NVIDIA driver is present: NVML sees " << m->sample().size() << " device(s)");
    CHECK_FALSE(m->sample().empty());
  } else {
    SUCCEED("no NVML here: GPU series stay absent");
  }
}

TEST_CASE("instances by state for every model, and autoscaling's series only where it is on",
          "[metrics][autoscale]") {
  deployment_config cfg;
  cfg.models.push_back(small_model(4));
  model_config pipe; // (no instances of its own: no series that would say "none ready")
  pipe.name = "pipe";
  pipe.pipeline.push_back(pipeline_step{"m", {}, {}});
  cfg.models.push_back(pipe);
  metrics stats{cfg};
  CHECK(stats.prometheus_text().find("actorserve_instances{model=\"pipe\"") == std::string::npos);
  auto* m = stats.model("m");
  m->instances[static_cast<std::size_t>(instance_state::ready)] = 2;
  m->instances[static_cast<std::size_t>(instance_state::stopped)] = 1;
  auto text = stats.prometheus_text();
  CHECK(text.find("actorserve_instances{model=\"m\",state=\"ready\"} 2") != std::string::npos);
  CHECK(text.find("actorserve_instances{model=\"m\",state=\"stopped\"} 1") != std::string::npos);
  CHECK(text.find("actorserve_desired_instances") == std::string::npos);
  m->desired_instances = 3;
  m->wait_quantile_level = 0.95;
  m->queue_wait_quantile = 0.25;
  m->predicted_misses = 4;
  m->scale_decisions[0][static_cast<std::size_t>(scale_reason::queue_wait)] = 2;
  text = stats.prometheus_text();
  CHECK(text.find("actorserve_desired_instances{model=\"m\"} 3") != std::string::npos);
  CHECK(text.find("actorserve_queue_wait_quantile_seconds{model=\"m\",quantile=\"0.95\"} 0.25")
        != std::string::npos);
  CHECK(text.find("actorserve_predicted_deadline_misses{model=\"m\"} 4") != std::string::npos);
  CHECK(text.find("actorserve_autoscaler_decisions_total{direction=\"up\",model=\"m\","
                  "reason=\"queue_wait\"} 2")
        != std::string::npos);
}
