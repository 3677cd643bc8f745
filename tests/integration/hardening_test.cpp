// Hostile and broken clients against the real process: framing, bodies in pieces, bad input,
// compression bombs, descriptor exhaustion, body and connection bounds, slow clients, origins,
// TLS.
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

TEST_CASE("requests whose framing a proxy could read differently are refused with 400 and the "
          "connection closed", "[integration][hardening]") {
  server_process srv{write_temp_file("framing.json", scale_config())};
  REQUIRE(srv.wait_ready());
  // Behind each bad request, a second one that a smuggler would want served: it never is.
  const std::string smuggled = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  auto exchange = [&](const std::string& request) {
    return raw_exchange(srv.port(), {request + smuggled}, std::chrono::milliseconds(0));
  };
  auto body = infer_body();
  auto len = std::to_string(body.size());
  struct bad_case {
    std::string request, status, message;
  };
  std::vector<bad_case> cases{
    {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
       + body,
     "400", "does not end in chunked"},
    {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
       + body,
     "400", "does not end in chunked"},
    {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: " + len + "\r\n\r\n0\r\n\r\n" + body,
     "400", "Content-Length"}, // (Beast's parser refuses this one itself)
    {"POST /v2/models/scale/infer HTTP/1.1\r\nContent-Length: " + len + "\r\n\r\n" + body,
     "400", "needs a Host header"},
    {"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400", "only one Host"},
  };
  std::string many = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100; ++i)
    many += "X-Field-" + std::to_string(i) + ": 1\r\n";
  cases.push_back({many + "\r\n", "431", "at most 100 header fields"});
  for (auto& c : cases) {
    auto out = exchange(c.request);
    INFO(c.request << "\n---\n" << out);
    CHECK(out.rfind("HTTP/1.1 " + c.status, 0) == 0);
    CHECK(occurrences(out, "HTTP/1.1 200") == 0); // the smuggled request is not answered
    CHECK(out.find(c.message) != std::string::npos);
    CHECK(out.find("Connection: close") != std::string::npos);
  }
  // HTTP/1.0 needs no Host; 99 extra fields are within the limit.
  CHECK(exchange("GET /v2/health/live HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 200", 0) == 0);
  auto fine = exchange(many.substr(0, many.rfind("X-Field-99")) + "\r\n");
  CHECK(occurrences(fine, "HTTP/1.1 200 OK") == 2);
  check_still_serving(srv.port());
}

TEST_CASE("bodies that arrive in pieces, chunked, pipelined or truncated are read right",
          "[integration]") {
  server_process srv{write_temp_file("bodies.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto post = [](const std::string& headers, const std::string& body) {
    return "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n" + headers
           + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  auto a = post("", infer_body("", "[1,2,3,4]"));
  // A chunked body (the parser reads it), then a binary one that ends the connection, sent in
  // one write with the end of the first request (pipelined).
  auto chunked_json = infer_body("", "[5,6,7,8]");
  std::ostringstream hex;
  hex << std::hex << chunked_json.size();
  auto b = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + hex.str() + "\r\n" + chunked_json + "\r\n0\r\n\r\n";
  std::string header = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]})";
  float in[4] = {-1, 0, 0.5f, 10};
  auto c = post("Connection: close\r\nInference-Header-Content-Length: " + std::to_string(header.size())
                  + "\r\n",
                header + std::string(reinterpret_cast<const char*>(in), sizeof in));
  // The first request's header and body arrive in pieces, 30 ms apart.
  auto cut1 = a.find("\r\n\r\n") - 5, cut2 = a.size() - 7;
  auto out = raw_exchange(srv.port(), {a.substr(0, cut1), a.substr(cut1, cut2 - cut1),
                                       a.substr(cut2) + b + c},
                          std::chrono::milliseconds(30));
  INFO(out);
  CHECK(occurrences(out, "HTTP/1.1 200 OK") == 3);
  CHECK(out.find(R"("data":[3,5,7,9])") != std::string::npos);
  CHECK(out.find(R"("data":[11,13,15,17])") != std::string::npos);
  CHECK(out.find(R"("data":[-1,1,2,21])") != std::string::npos);
  // A body that stops short of its Content-Length: the server waits, the client gives up; the
  // server serves on.
  auto cut = post("", infer_body());
  raw_exchange(srv.port(), {cut.substr(0, cut.size() - 10)}, std::chrono::milliseconds(0),
               std::chrono::milliseconds(200));
  http_client client{srv.port()};
  CHECK(client.post("/v2/models/scale/infer", infer_body()).status == 200);
}

TEST_CASE("bad requests get the right status and a JSON error, and serving goes on",
          "[integration]") {
  server_process srv{write_temp_file("errors.json", scale_config())};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};

  auto r = c.post("/v2/models/scale/infer", "{\"inputs\": [");
  CHECK(r.status == 400);
  CHECK(error_of(r).rfind("request body is not valid JSON", 0) == 0);
  CHECK(r.headers["content-type"] == "application/json");

  r = c.post("/v2/models/scale/infer",
             R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': expected shape [-1, 4] (-1 = batch dimension, 1 to 8), got [1, 3]");

  r = c.post("/v2/models/scale/infer",
             R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': expected datatype FP32, got INT32");

  r = c.post("/v2/models/scale/infer",
             R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]})");
  CHECK(r.status == 400);
  CHECK(error_of(r) == "input 'x': shape [1, 4] needs 4 elements, data has 3");

  r = c.post("/v2/models/nope/infer", infer_body());
  CHECK(r.status == 404);
  CHECK(error_of(r) == "unknown model 'nope'");
  CHECK(c.get("/v2/models/nope").status == 404);
  CHECK(c.get("/v2/models/nope/ready").status == 404);
  CHECK(c.get("/v2/models/scale/versions/7").status == 404);
  CHECK(c.post("/v2/models/scale/versions/7/infer", infer_body()).status == 404);
  CHECK(c.get("/v3/whatever").status == 404);
  r = c.get("/v2/models/scale/infer");
  CHECK(r.status == 405);
  CHECK(r.headers["allow"] == "POST"); // RFC 9110: a 405 names the methods allowed
  r = c.post("/v2/health/ready", "");
  CHECK(r.status == 405);
  CHECK(r.headers["allow"] == "GET, HEAD");

  // HEAD is GET without the body: the same status and Content-Length, then the next request
  // on the connection is answered (a body sent after HEAD's header would be read as a response).
  auto raw = raw_exchange(srv.port(), {"HEAD /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                                       "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
                                       "Connection: close\r\n\r\n"},
                          std::chrono::milliseconds(0));
  auto second = raw.find("HTTP/1.1", 1);
  REQUIRE(second != std::string::npos);
  auto head = raw.substr(0, second);
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Content-Length: 13\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n"); // no body
  CHECK(raw.substr(raw.size() - 13) == "{\"live\":true}");

  r = c.post("/v2/models/scale/infer", infer_body(R"("timeout": 999999999999)"));
  CHECK(r.status == 400);
  CHECK(error_of(r).find("max_timeout_us") != std::string::npos);

  r = c.post("/v2/models/scale/infer", infer_body(R"("actorserve_fault": "crash")"));
  CHECK(r.status == 400); // the fault switch is off unless the deployment enables it
  CHECK(error_of(r).find("fault_injection") != std::string::npos);

  check_still_serving(srv.port());

  // Over max_body_bytes (4096): 413, and the connection is closed rather than read on.
  http_client big{srv.port()};
  r = big.post("/v2/models/scale/infer", std::string(10000, ' '));
  CHECK(r.status == 413);
  CHECK(error_of(r).find("exceeds the limit of 4096 bytes") != std::string::npos);
  check_still_serving(srv.port());
  CHECK(srv.running());
}

TEST_CASE("hostile requests: bytes that are not UTF-8, compressed bodies and bombs, a body sent in full "
          "after its 413, and thousands of mutated requests all get a JSON answer",
          "[integration]") {
  server_process srv{write_temp_file("hostile.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto strict_json = [](const std::string& text) { // boost::json rejects invalid UTF-8
    json::error_code ec;
    auto v = json::parse(text, ec);
    INFO(text);
    REQUIRE_FALSE(ec);
    return v;
  };
  auto body_of = [](const std::string& raw) { return raw.substr(raw.find("\r\n\r\n") + 4); };

  // A target that is not UTF-8 is named in the error as U+FFFD, not copied into the JSON.
  auto raw = raw_exchange(srv.port(), {"GET /v2/mod\x81ls/sc\xff HTTP/1.1\r\nHost: x\r\n"
                                       "Connection: close\r\n\r\n"},
                          std::chrono::milliseconds(0));
  REQUIRE(raw.rfind("HTTP/1.1 404", 0) == 0);
  CHECK(strict_json(body_of(raw)).as_object()["error"].as_string()
        == "no route for GET /v2/mod\xEF\xBF\xBDls/sc\xEF\xBF\xBD");

  // Compressed bodies (as Triton's clients send them) are decoded; one that inflates past
  // max_body_bytes (4096) is refused as too large; a coding it does not know is refused by name
  // rather than read as JSON or tensor bytes.
  http_client c{srv.port()};
  const std::string gzipped( // Python's gzip.compress(infer_body(), mtime=0)
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\xca\x4c\x51\xb2\x52\x50\x2a\x31\x54\xd2"
    "\x51\x50\xca\xcc\x2b\x28\x2d\x29\x06\xf2\xa3\xab\x95\xf2\x12\x73\x53\x41\x32\x15\x20\x89"
    "\xe2\x8c\xc4\x02\x10\x2f\xda\x50\x47\xc1\x24\x16\x28\x90\x92\x58\x92\x58\x52\x09\x16\x53"
    "\x72\x0b\x30\x36\x52\x82\x8a\x41\xd4\x18\xe9\x18\xeb\x98\xc4\xd6\xc6\xd6\x02\x00\xc4\xf9"
    "\x8f\x31\x5f\x00\x00\x00",
    94);
  auto r = c.post("/v2/models/scale/infer", gzipped, {{"Content-Encoding", "gzip"}});
  CHECK(r.status == 200);
  CHECK(json::serialize(parse(r)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");
  r = c.post("/v2/models/scale/infer", gzipped.substr(0, 50), {{"Content-Encoding", "gzip"}});
  CHECK(r.status == 400);
  CHECK(error_of(r).rfind("request body (Content-Encoding gzip): ", 0) == 0);
  const std::string bomb = // 100,000 spaces as a raw deflate stream of 115 bytes
    std::string("\xed\xc1\x31\x01\x00\x00\x00\xc2\xa0\x2a\xeb\x9f\xd2\x1a\x1e\x40\x01", 17)
    + std::string(96, '\0') + "\xaf\x06";
  r = c.post("/v2/models/scale/infer", bomb, {{"Content-Encoding", "deflate"}});
  CHECK(r.status == 413);
  CHECK(error_of(r) == "request body (Content-Encoding deflate): it decompresses to more than the "
                       "limit of 4096 bytes (max_body_bytes)");
  r = c.post("/v2/models/scale/infer", infer_body(), {{"Content-Encoding", "br"}});
  CHECK(r.status == 415);
  CHECK(error_of(r)
        == "Content-Encoding 'br' is not supported; send the body as it is or with gzip or deflate");
  CHECK(c.post("/v2/models/scale/infer", infer_body(), {{"Content-Encoding", "identity"}}).status
        == 200);

  // Responses are compressed for clients that accept it (large enough ones: /metrics here; the
  // Python test with Triton's client decodes them with Python's gzip and zlib).
  auto metrics = [&](const std::string& accept) {
    return raw_exchange(srv.port(), {"GET /metrics HTTP/1.1\r\nHost: x\r\n" + accept
                                     + "Connection: close\r\n\r\n"},
                        std::chrono::milliseconds(0));
  };
  raw = metrics("Accept-Encoding: gzip, deflate\r\n");
  REQUIRE(raw.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(raw.find("\r\nContent-Encoding: gzip\r\n") != std::string::npos);
  CHECK(raw.find("\r\nVary: Accept-Encoding\r\n") != std::string::npos);
  CHECK(body_of(raw).rfind("\x1f\x8b\x08", 0) == 0);
  auto plain_metrics = body_of(metrics(""));
  CHECK(plain_metrics.find("actorserve_requests_total") != std::string::npos);
  CHECK(body_of(raw).size() < plain_metrics.size() / 3);
  raw = metrics("Accept-Encoding: deflate\r\n");
  CHECK(raw.find("\r\nContent-Encoding: deflate\r\n") != std::string::npos);
  CHECK(body_of(raw).rfind("\x78\x01", 0) == 0); // (zlib format, level 1)
  raw = metrics("Accept-Encoding: br, gzip;q=0\r\n");
  CHECK(raw.find("Content-Encoding") == std::string::npos);
  CHECK(raw.find("actorserve_requests_total") != std::string::npos);
  // A small answer goes as it is (under compression_min_bytes).
  r = c.post("/v2/models/scale/infer", infer_body(), {{"Accept-Encoding", "gzip"}});
  CHECK(r.status == 200);
  CHECK(r.headers.count("content-encoding") == 0);
  CHECK(json::serialize(parse(r)["outputs"].as_array()[0].as_object()["data"]) == "[3,5,7,9]");

  // A client that writes its whole 32 MB body before it reads gets the 413: the server drops
  // the rest of the body instead of resetting the connection (the write failed with EPIPE).
  std::string big = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                    + std::to_string(32 << 20) + "\r\n\r\n";
  big.resize(big.size() + (32u << 20), ' ');
  raw = raw_exchange(srv.port(), {big}, std::chrono::milliseconds(0));
  REQUIRE(raw.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(strict_json(body_of(raw)).as_object()["error"].as_string()
        == "request body exceeds the limit of 4096 bytes (max_body_bytes)");

  // Mutations of valid requests (JSON and binary tensors): every one gets an answer that is JSON
  // (the outputs, or an "error" string), and the server serves on. Fixed seed: reproducible.
  std::mt19937 rng(20261127);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  const std::vector<std::string> tokens{"\"", "[", "]", "{", "}", ",", ":", "\\", std::string(1, '\0'),
                                        "\xff", "\xc3", "-", "1e999", "null", "-1", "0", "18446744073709551616",
                                        "\"shape\"", "\"data\"", "\"datatype\"", "\"FP16\"", "\"BYTES\"",
                                        "[[[[[[[[", "\"binary_data_size\":", "\"parameters\":{}"};
  float x[4] = {1, 2, 3, 4};
  std::string binary_header = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32",)"
                              R"("parameters":{"binary_data_size":16}}],)"
                              R"("outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  std::map<unsigned, int> statuses;
  for (int i = 0; i < 3000; ++i) {
    bool binary = i % 3 == 0;
    std::string body = binary ? binary_header + std::string(reinterpret_cast<char*>(x), 16)
                              : infer_body(i % 2 ? R"("binary_data_output": true)" : "");
    std::size_t json_len = binary ? binary_header.size() : 0;
    for (std::size_t k = 0, n = pick(3); k < n && !body.empty(); ++k) { // (a third unchanged)
      auto at = pick(body.size());
      switch (pick(4)) {
        case 0: body[at] = static_cast<char>(pick(256)); break;
        case 1: body.erase(at, 1 + pick(12)); break;
        case 2: body.insert(at, tokens[pick(tokens.size())]); break;
        default: body.resize(at); break;
      }
    }
    std::map<std::string, std::string> headers;
    if (binary)
      headers["Inference-Header-Content-Length"]
        = pick(5) ? std::to_string(std::min(json_len, body.size()))
                  : std::vector<std::string>{"-1", "abc", "99999999999999999999", "0", " 7"}[pick(5)];
    r = c.post("/v2/models/scale/infer", body, headers);
    INFO("mutation " << i << ": " << body);
    REQUIRE(r.status != 0);
    ++statuses[r.status];
    CHECK((r.status == 200 || r.status == 400));
    auto answer = r.headers.count("inference-header-content-length")
                    ? r.body.substr(0, std::stoul(r.headers["inference-header-content-length"]))
                    : r.body;
    auto doc = strict_json(answer).as_object();
    CHECK((r.status == 200 ? doc.contains("outputs") : doc["error"].is_string()));
  }
  INFO("answers by status: 200 x" << statuses[200] << ", 400 x" << statuses[400]);
  CHECK(statuses[200] > 1000); // the unchanged ones and some mutated ones are served
  CHECK(statuses[400] > 1000);
  check_still_serving(srv.port());
  CHECK(srv.running());
}

TEST_CASE("out of file descriptors, the server pauses accepting, keeps serving and recovers",
          "[integration]") {
  auto port = free_port();
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("port": 0)"), 9, R"("port": )" + std::to_string(port));
  auto path = write_temp_file("fd_limit.json", cfg);
  child_process srv{{"sh", "-c", "ulimit -n 64 && exec '" + actorserve_binary() + "' serve --config '"
                                   + path + "'"}};
  REQUIRE(eventually([&] {
    return http_client{port, std::chrono::seconds(1)}.get("/v2/health/ready").status == 200;
  }, std::chrono::seconds(30)));
  http_client before{port};
  REQUIRE(before.get("/v2/health/live").status == 200);
  // 100 connections: the kernel completes them (listen backlog); the server runs out of
  // descriptors after about 50.
  std::vector<int> held;
  for (int i = 0; i < 100; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    held.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // A connection it had accepted is served meanwhile, and the failure is reported, not spun on.
  auto r = before.post("/v2/models/scale/infer", infer_body());
  CHECK(r.status == 200);
  auto failures = occurrences(srv.log(), "cannot accept connections: Too many open files");
  CHECK(failures >= 1);
  CHECK(failures <= 3);
  CHECK(occurrences(srv.log(), "accept") <= 3);
  for (int fd : held)
    ::close(fd);
  // Descriptors are back: it accepts again (within its back-off of at most 500 ms).
  CHECK(eventually([&] {
    return http_client{port, std::chrono::seconds(1)}.post("/v2/models/scale/infer", infer_body()).status
           == 200;
  }, std::chrono::seconds(5)));
}

TEST_CASE("request bodies past max_inflight_body_bytes get 503 until the held ones are answered, a "
          "JSON document too large for it alone gets 413",
          "[integration]") {
  auto cfg = scale_config(R"(, "max_batch_size": 1, "batching": {"max_queue_delay_us": 0})",
                          R"(, "fault_injection": true)");
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 1024, "max_inflight_body_bytes": 1024)");
  server_process srv{write_temp_file("body_budget.json", cfg)};
  REQUIRE(srv.wait_ready());
  // Five requests the worker holds 300 ms each, one after another; meanwhile one whose body
  // (900 bytes) would pass the budget of 1024 with any of them.
  auto slow = infer_body(R"("actorserve_fault": "slow")");
  auto big = infer_body() + std::string(900 - infer_body().size(), ' ');
  std::vector<http_response> held(5);
  std::vector<std::thread> clients;
  for (auto& h : held)
    clients.emplace_back([&] { h = http_client{srv.port()}.post("/v2/models/scale/infer", slow); });
  REQUIRE(eventually([&] {
    auto t = http_client{srv.port()}.get("/metrics").body;
    return series(t, R"(actorserve_requests_in_flight{model="scale"})") >= 1;
  }, std::chrono::seconds(5)));
  auto held_bytes = [&] {
    return series(http_client{srv.port()}.get("/metrics").body, "actorserve_http_request_body_bytes");
  };
  CHECK(held_bytes() >= static_cast<double>(slow.size()));
  http_client c{srv.port()};
  auto r = c.post("/v2/models/scale/infer", big);
  CHECK(r.status == 503);
  CHECK(error_of(r).find("(http.max_inflight_body_bytes)") != std::string::npos);
  CHECK(r.headers["retry-after"] == "1");
  // A chunked body is held to the same budget once it is read.
  auto chunked = [&] {
    return raw_exchange(srv.port(), {"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n"
                                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                     "384\r\n" + big + "\r\n0\r\n\r\n"},
                        std::chrono::milliseconds(0));
  };
  auto out = chunked();
  CHECK(out.find("HTTP/1.1 503") != std::string::npos);
  CHECK(out.find("max_inflight_body_bytes") != std::string::npos);
  for (auto& t : clients)
    t.join();
  for (auto& h : held)
    CHECK(h.status == 200);
  // Answered: its bytes are free again, and so is the budget for the large ones.
  CHECK(http_client{srv.port()}.post("/v2/models/scale/infer", big).status == 200);
  CHECK(chunked().find("HTTP/1.1 200 OK") != std::string::npos);
  // A parsed JSON document takes many times its text (16 bytes a number): it counts in the budget
  // while it is decoded. 441 numbers in 900 bytes need more than 1024 bytes on their own.
  std::string dense = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0)";
  for (int i = 0; i < 440; ++i)
    dense += ",0";
  dense += "]}]}";
  REQUIRE(dense.size() <= 1024);
  r = c.post("/v2/models/scale/infer", dense);
  CHECK(r.status == 413);
  CHECK(error_of(r).find("JSON document takes more memory than the server allows for request "
                         "bodies (http.max_inflight_body_bytes 1024): send large tensors as binary")
        != std::string::npos);
  CHECK(eventually([&] { return held_bytes() == 0; }, std::chrono::seconds(2)));
}

TEST_CASE("request bodies count in max_inflight_body_bytes as their bytes arrive, not as they are "
          "declared", "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 1024, "max_inflight_body_bytes": 1024)");
  server_process srv{write_temp_file("body_arrival.json", cfg)};
  REQUIRE(srv.wait_ready());
  auto held_bytes = [&] {
    return series(http_client{srv.port()}.get("/metrics").body, "actorserve_http_request_body_bytes");
  };
  const std::string head = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n";
  {
    // Ten clients declare bodies that would fill the budget, and send none of them: they hold
    // none of it, and real requests are served.
    std::vector<std::unique_ptr<stalled_connection>> idle;
    for (int i = 0; i < 10; ++i)
      idle.push_back(std::make_unique<stalled_connection>(
        srv.port(), head + "Content-Length: 1000\r\n\r\n"));
    for (int i = 0; i < 5; ++i)
      check_still_serving(srv.port());
    CHECK(held_bytes() == 0);
    // One sends 600 bytes of its body: those it holds, chunked bodies alike.
    idle[0]->send(std::string(600, ' '));
    stalled_connection chunked{srv.port(), head + "Transfer-Encoding: chunked\r\n\r\n12c\r\n"
                                             + std::string(300, ' ')};
    REQUIRE(eventually([&] { return held_bytes() == 900; }, std::chrono::seconds(5)));
    // A request whose body does not fit beside them gets 503; one that does is served.
    auto r = http_client{srv.port()}.post("/v2/models/scale/infer",
                                         infer_body() + std::string(200, ' '));
    CHECK(r.status == 503);
    CHECK(error_of(r).find("(http.max_inflight_body_bytes)") != std::string::npos);
    check_still_serving(srv.port());
  }
  // The stalled clients gone, their bytes are free again.
  CHECK(eventually([&] { return held_bytes() == 0; }, std::chrono::seconds(5)));
  check_still_serving(srv.port());
}

TEST_CASE("every request of a keep-alive connection gets the header timeout once it starts, and "
          "connections past the bounds are refused", "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 4096, "header_timeout_ms": 300, "idle_timeout_ms": 60000,
                 "max_connections": 6, "max_connections_per_client": 4)");
  server_process srv{write_temp_file("slow_clients.json", cfg)};
  REQUIRE(srv.wait_ready());
  const std::string live = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  {
    // A slowloris: its first request served, the second one's header trickles in. It is closed
    // after the header timeout, not kept for the idle timeout (a minute).
    stalled_connection slow{srv.port(), live + "GET /v2/health/live HTTP/1.1\r\nHo"};
    CHECK(slow.closed_within(std::chrono::seconds(10)));
    CHECK(occurrences(slow.received(), "HTTP/1.1 200 OK") == 1);
    // An idle keep-alive connection between requests is kept (the idle timeout).
    stalled_connection idle{srv.port(), live};
    CHECK_FALSE(idle.closed_within(std::chrono::milliseconds(1000)));
    CHECK(occurrences(idle.received(), "HTTP/1.1 200 OK") == 1);
  }
  // Four connections from one address are the most it holds; a fifth is refused with 503.
  // (The connections above were closed by this side first: until the node has seen them go,
  // they count against the four. So four are opened until all four are accepted and answered.)
  std::vector<std::unique_ptr<stalled_connection>> held;
  auto four_held = [&] {
    held.clear();
    for (int i = 0; i < 4; ++i)
      held.push_back(std::make_unique<stalled_connection>(srv.port(), live));
    for (auto& h : held) {
      eventually([&] { return occurrences(h->received(), "200 OK") == 1
                              || h->closed_within(std::chrono::milliseconds(20)); },
                 std::chrono::seconds(5));
      if (h->closed_within(std::chrono::milliseconds(20))
          || occurrences(h->received(), "200 OK") != 1)
        return false;
    }
    return true;
  };
  REQUIRE(eventually(four_held, std::chrono::seconds(10)));
  stalled_connection fifth{srv.port(), live};
  REQUIRE(fifth.closed_within(std::chrono::seconds(5)));
  INFO(fifth.received());
  CHECK(fifth.received().rfind("HTTP/1.1 503", 0) == 0);
  CHECK(fifth.received().find("too many connections: client 127.0.0.1 holds 4 connections, the "
                              "limit for one address (http.max_connections_per_client)")
        != std::string::npos);
  CHECK(fifth.received().find("Retry-After: 1") != std::string::npos);
  held.pop_back(); // one closes: there is room again
  CHECK(eventually([&] {
    return http_client{srv.port(), std::chrono::seconds(2)}.get("/v2/health/live").status == 200;
  }, std::chrono::seconds(5)));
}

TEST_CASE("state-changing requests from a web page of another origin are refused, and model "
          "control can be switched off", "[integration][hardening]") {
  auto cfg = scale_config("", R"(, "fault_injection": true)");
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 4096, "allowed_origins": ["https://console.example.com"])");
  server_process srv{write_temp_file("origins.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  // What a page on another site makes a browser send (a "simple" POST: no preflight).
  const std::map<std::string, std::string> evil{{"Origin", "https://evil.example"},
                                                {"Content-Type", "text/plain"}};
  for (auto target : {"/v2/repository/models/scale/unload", "/v2/repository/models/scale/load",
                      "/v2/systemsharedmemory/region/r/unregister", "/v2/admin/faults"}) {
    INFO(target);
    auto r = c.post(target, "", evil);
    CHECK(r.status == 403);
    CHECK(error_of(r) == "a state-changing request from a web page of origin "
                         "'https://evil.example' is refused (http.allowed_origins)");
  }
  check_still_serving(srv.port()); // nothing was unloaded
  CHECK(c.post("/v2/models/scale/infer", infer_body(), evil).status == 200); // (no state change)
  // The allowed origin, and clients that send none (curl, Triton's clients), are served.
  CHECK(c.post("/v2/repository/models/scale/unload", "",
               {{"Origin", "https://console.example.com"}}).status == 200);
  CHECK(c.post("/v2/repository/models/scale/load", "").status == 200);
  check_still_serving(srv.port());
  // Model control switched off: load and unload are refused whoever asks.
  server_process off{write_temp_file(
    "control_off.json", scale_config("", R"(, "model_control": false)"))};
  REQUIRE(off.wait_ready());
  auto r = http_client{off.port()}.post("/v2/repository/models/scale/unload", "");
  CHECK(r.status == 403);
  CHECK(error_of(r) == "model control is switched off on this server (server.model_control)");
  CHECK(http_client{off.port()}.post("/v2/repository/index", "").status == 200);
  check_still_serving(off.port());
}

TEST_CASE("bodies of requests other than inference are bounded before they are parsed",
          "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22, R"("max_body_bytes": 1048576)");
  server_process srv{write_temp_file("control_bodies.json", cfg)};
  REQUIRE(srv.wait_ready());
  http_client c{srv.port()};
  // 100 KB of small numbers: far more memory once parsed than as text.
  std::string big = R"({"ready": true, "x": [0)";
  while (big.size() < 100'000)
    big += ",0";
  big += "]}";
  auto r = c.post("/v2/repository/index", big);
  CHECK(r.status == 413);
  CHECK(error_of(r) == "the body of POST /v2/repository/index may be at most 65536 bytes, got "
                         + std::to_string(big.size()));
  CHECK(c.post("/v2/repository/index", R"({"ready": true})").status == 200);
  // Inference bodies keep their own bound (max_body_bytes).
  CHECK(c.post("/v2/models/scale/infer", infer_body() + std::string(100'000, ' ')).status == 200);
}

TEST_CASE("a body that falls behind the minimum data rate is cut off, one that keeps it up is "
          "served", "[integration][hardening]") {
  auto cfg = scale_config();
  cfg.replace(cfg.find(R"("max_body_bytes": 4096)"), 22,
              R"("max_body_bytes": 8192, "body_timeout_ms": 60000, "body_grace_ms": 500,
                 "min_body_bytes_per_s": 1000)");
  server_process srv{write_temp_file("body_rate.json", cfg)};
  REQUIRE(srv.wait_ready());
  auto body = infer_body() + std::string(4000 - infer_body().size(), ' ');
  auto head = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  // 100 bytes, then nothing: it had 0.6 s (grace + 100 bytes at 1000 B/s), not the 60 s timeout.
  stalled_connection trickle{srv.port(), head + body.substr(0, 100)};
  CHECK(trickle.closed_within(std::chrono::seconds(10)));
  // 1000 bytes every 300 ms keeps ahead of the rate: served.
  std::vector<std::string> pieces{head + body.substr(0, 1000)};
  for (std::size_t at = 1000; at < body.size(); at += 1000)
    pieces.push_back(body.substr(at, 1000));
  auto out = raw_exchange(srv.port(), pieces, std::chrono::milliseconds(300));
  CHECK(out.rfind("HTTP/1.1 200 OK", 0) == 0);
  check_still_serving(srv.port());
}

TEST_CASE("a queued request whose client closes its connection is dropped, not run",
          "[integration]") {
  server_process srv{write_temp_file(
    "cancel.json", scale_config(R"(, "max_batch_size": 1,
                                   "batching": {"max_queue_delay_us": 0, "max_queue_size": 3})",
                                R"(, "fault_injection": true)"))};
  REQUIRE(srv.wait_ready());
  // The worker is busy 300 ms with one request; three more queue behind it, and their clients
  // close their connections (a pipelined fourth on another connection is still wanted).
  http_response first;
  std::thread busy([&] {
    first = http_client{srv.port()}.post("/v2/models/scale/infer",
                                         infer_body(R"("actorserve_fault": "slow")"));
  });
  auto metric = [&](const std::string& series_name) {
    return series(http_client{srv.port()}.get("/metrics").body, series_name);
  };
  REQUIRE(eventually([&] { return metric(R"(actorserve_requests_in_flight{model="scale"})") == 1; },
                     std::chrono::seconds(5)));
  auto body = infer_body();
  auto request = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(srv.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::close(fd);
  }
  // Two pipelined requests on one connection: the second one's last bytes reach the socket while
  // the first is queued (readable, but not a close); both are answered. The queue (3 places)
  // still holds the three abandoned requests: it makes room by dropping them.
  auto closing = "POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  auto piped = raw_exchange(srv.port(), {request + closing.substr(0, 40), closing.substr(40)},
                            std::chrono::milliseconds(50));
  CHECK(occurrences(piped, "HTTP/1.1 200 OK") == 2);
  busy.join();
  CHECK(first.status == 200);
  CHECK(eventually([&] {
    return metric(R"(actorserve_requests_total{model="scale",outcome="cancelled"})") == 3;
  }, std::chrono::seconds(5)));
  // Run: the slow one and the two pipelined ones; the three whose clients left never were.
  CHECK(metric(R"(actorserve_batches_total{device="cpu",model="scale",worker="scale/cpu/0"})") == 3);
  check_still_serving(srv.port());
}

TEST_CASE("a client that expects 100-continue gets it before sending its body", "[integration]") {
  server_process srv{write_temp_file("continue.json", scale_config())};
  REQUIRE(srv.wait_ready());
  auto body = write_temp_file("continue_body.json", infer_body() + std::string(2000, ' '));
  auto url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/v2/models/scale/infer";
  auto out = run_command({"curl", "-sv", "--max-time", "10", "-H", "Expect: 100-continue",
                          "--data-binary", "@" + body, url});
  CHECK(out.first == 0);
  CHECK(out.second.find("< HTTP/1.1 100 Continue") != std::string::npos);
  CHECK(out.second.find("< HTTP/1.1 200 OK") != std::string::npos);
  CHECK(out.second.find("[3,5,7,9]") != std::string::npos);
}

TEST_CASE("HTTPS serves Triton's client and Python's over TLS, answers plaintext 400, refuses "
          "what the client CA did not sign and takes rotated certificate files",
          "[integration][tls]") {
  auto dir = make_certificates("https", {"ca", "rogue_ca"},
                               {{"server", "ca"}, {"client", "ca"}, {"rogue", "rogue_ca"},
                                {"rotated", "rogue_ca"}});
  // (server.http.tls, spliced into scale_config's http object)
  auto with_tls = [](const std::string& certificate, const std::string& key,
                     const std::string& client_ca) {
    auto config = scale_config();
    const std::string at = R"("max_body_bytes": 4096)";
    config.replace(config.find(at), at.size(),
                   at + R"(, "tls": {"certificate": ")" + certificate + R"(", "key": ")" + key
                     + "\"" + (client_ca.empty() ? "" : R"(, "client_ca": ")" + client_ca + "\"")
                     + "}");
    return config;
  };
  auto check = [&](const std::string& name, const std::string& client_ca, const std::string& mode) {
    server_process srv{write_temp_file(
      name + ".json", with_tls(dir + "/server.pem", dir + "/server.key", client_ca))};
    auto out = run_command({std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                            std::string(ACTORSERVE_SOURCE_DIR)
                              + "/tests/integration/python/https_test.py",
                            "127.0.0.1:" + std::to_string(srv.port()), dir, mode});
    INFO(out.second);
    INFO(srv.log());
    CHECK(out.first == 0);
    CHECK(out.second.find("https " + mode + ": ok") != std::string::npos);
  };
  check("https_plain", "", "plain-clients");
  check("https_mutual", dir + "/ca.pem", "client-certificates");

  // Certificate rotation: the files change under the running node (checked every 100 ms here).
  // A key alone that is not the certificate's is not taken (the old pair serves on); the new
  // pair is, for new connections.
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  auto live_cert = write_temp_file("https_live/server.pem", read(dir + "/server.pem"));
  auto live_key = write_temp_file("https_live/server.key", read(dir + "/server.key"));
  auto rotating = with_tls(live_cert, live_key, "");
  rotating.replace(rotating.find(R"("key": ")"), 8, R"("reload_interval_ms": 100, "key": ")");
  server_process srv{write_temp_file("https_rotating.json", rotating)};
  auto served_by = [&](const std::string& ca) {
    return run_command({std::string(ACTORSERVE_SOURCE_DIR) + "/.venv/bin/python",
                        std::string(ACTORSERVE_SOURCE_DIR)
                          + "/tests/integration/python/https_test.py",
                        "127.0.0.1:" + std::to_string(srv.port()), dir, "served-by", ca})
             .first
           == 0;
  };
  CHECK(served_by("ca"));
  write_temp_file("https_live/server.key", read(dir + "/rotated.key"));
  eventually([&] { return srv.log().find("do not load") != std::string::npos; },
             std::chrono::seconds(5));
  CHECK(srv.log().find("TLS certificate files changed but do not load") != std::string::npos);
  CHECK(served_by("ca"));
  write_temp_file("https_live/server.pem", read(dir + "/rotated.pem"));
  eventually([&] { return served_by("rogue_ca"); }, std::chrono::seconds(10));
  CHECK(served_by("rogue_ca"));
  CHECK_FALSE(served_by("ca"));
  INFO(srv.log());
  CHECK(srv.log().find("TLS certificate files changed: new connections use them")
        != std::string::npos);

  // A key that is not the certificate's, or a certificate file that is not one, stops the start
  // naming the file.
  auto wrong = with_tls(dir + "/server.pem", dir + "/client.key", "");
  auto started = run_command({"timeout", "20", actorserve_binary(), "serve", "--config",
                              write_temp_file("https_bad.json", wrong), "--port", "0"});
  CHECK(started.first == 1);
  CHECK(started.second.find("server.http.tls.key: cannot use") != std::string::npos);
  auto not_pem = with_tls(dir + "/server.key", dir + "/server.key", "");
  started = run_command({"timeout", "20", actorserve_binary(), "serve", "--config",
                         write_temp_file("https_bad2.json", not_pem), "--port", "0"});
  CHECK(started.first == 1);
  CHECK(started.second.find("server.http.tls.certificate: cannot use") != std::string::npos);
}
