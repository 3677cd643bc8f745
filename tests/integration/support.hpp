// Helpers for integration tests: run the real actorserve binary on a free loopback port and
// talk to it over HTTP with a small synchronous client (every call bounded by a timeout).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace actorserve::itest {

/// Writes `text` to a fresh file in a per-test temporary folder and returns its path.
std::string write_temp_file(const std::string& name, const std::string& text);

/// Runs `actorserve serve --config FILE --port 0` and waits until it listens. Stops it (SIGTERM,
/// then SIGKILL after 10 s) on destruction. stderr goes to a log file that failures print.
class server_process {
public:
  explicit server_process(const std::string& config_path,
                          std::chrono::seconds startup_timeout = std::chrono::seconds(30));
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const;
  std::string log() const;

  /// Polls GET /v2/health/ready until it answers 200 or the timeout passes.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

  /// SIGTERM and wait; returns the exit status (or -1 on timeout, after SIGKILL).
  int stop();

  /// Sends `sig` and returns at once.
  void signal(int sig) const;

private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
  mutable std::optional<int> exited_; // its exit code, once running() found it ended
};

struct http_response {
  unsigned status = 0; // 0: no answer (connection failed or timed out)
  std::string body;
  std::map<std::string, std::string> headers; // lower-case names
  std::string error;                          // why status is 0
};

/// One keep-alive connection to 127.0.0.1:port.
class http_client {
public:
  explicit http_client(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~http_client();
  http_response get(const std::string& target);
  http_response post(const std::string& target, const std::string& body,
                     const std::map<std::string, std::string>& headers = {});

private:
  struct impl;
  impl* impl_;
};

/// Writes `pieces` to a new connection to 127.0.0.1:port one by one, `pause` apart, then reads
/// until the server closes the connection (or `timeout` passes); returns all it read.
std::string raw_exchange(uint16_t port, const std::vector<std::string>& pieces,
                         std::chrono::milliseconds pause,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// A connection to 127.0.0.1:port that sent `bytes` and then stalls: it sends no more (unless
/// told to) and reads nothing, until destroyed. What slow or hostile clients do.
class stalled_connection {
public:
  stalled_connection(uint16_t port, const std::string& bytes);
  ~stalled_connection();
  stalled_connection(const stalled_connection&) = delete;
  stalled_connection& operator=(const stalled_connection&) = delete;
  void send(const std::string& more);
  /// Reads what the server sends until it closes the connection (true) or `limit` passes
  /// (false); what it read is in received().
  bool closed_within(std::chrono::milliseconds limit);
  const std::string& received() const { return received_; }

private:
  int fd_ = -1;
  std::string received_;
};

/// Another program (e.g. a Prometheus server) run for a test; output to a log file; SIGTERM,
/// then SIGKILL after 10 s, on destruction.
class child_process {
public:
  explicit child_process(const std::vector<std::string>& argv);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  std::string log() const;
  pid_t pid() const { return pid_; }
  /// SIGKILL and reap (the destructor then does nothing).
  void kill_now();

private:
  pid_t pid_ = -1;
  std::string log_path_;
};

/// Polls `condition` (evaluated once per round: it may have side effects, such as a request)
/// every 20 ms until it holds or `limit` passes; its last result.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds limit = std::chrono::seconds(30));

/// The value of one series of a Prometheus text, its name and labels written exactly as exposed
/// (e.g. `actorserve_batches_total{device="cpu",model="m",worker="m/cpu/0"}`); -1 when absent.
double series(const std::string& text, const std::string& name_and_labels);

/// How many workers report ready in the server's /metrics (actorserve_worker_state).
int ready_workers(uint16_t port);

/// How often `what` occurs in `text` (e.g. a log line in a server's log).
std::size_t occurrences(const std::string& text, const std::string& what);

/// Test certificates made with openssl in a fresh folder `name` of the test's temporary folder:
/// a self-signed CA for each of `cas` (CA.pem, CA.key) and, for each {leaf, ca} of `leaves`, a
/// certificate LEAF.pem with its key LEAF.key that the CA signed, valid for 127.0.0.1 and
/// localhost. Returns the folder's path; fails the test where openssl does.
std::string make_certificates(const std::string& name, const std::vector<std::string>& cas,
                              const std::vector<std::pair<std::string, std::string>>& leaves);

/// A TCP port that was free on 127.0.0.1 a moment ago.
uint16_t free_port();

/// Runs a command and returns its exit status and combined output.
std::pair<int, std::string> run_command(const std::vector<std::string>& argv);

/// The actorserve binary and the folder with the test models (set by CMake).
std::string actorserve_binary();
std::string models_dir();

} // namespace actorserve::itest
