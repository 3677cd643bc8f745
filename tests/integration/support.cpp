#include "support.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace actorserve::itest {

std::string actorserve_binary() {
  // ACTORSERVE_TEST_BINARY runs the tests against another build or a wrapper (gdb, valgrind).
  if (auto* env = std::getenv("ACTORSERVE_TEST_BINARY"))
    return env;
  return ACTORSERVE_BINARY;
}

std::string models_dir() {
  return ACTORSERVE_TEST_MODELS;
}

std::string write_temp_file(const std::string& name, const std::string& text) {
  static auto dir = [] {
    auto d = std::filesystem::temp_directory_path()
             / ("actorserve_itest_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  auto path = dir / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path.string();
}

server_process::server_process(const std::string& config_path, std::chrono::seconds startup_timeout) {
  log_path_ = write_temp_file("server_" + std::to_string(std::rand()) + ".log", "");
  int out[2];
  if (::pipe(out) != 0)
    throw std::runtime_error("pipe failed");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    int log = ::open(log_path_.c_str(), O_WRONLY | O_TRUNC);
    ::dup2(log, STDERR_FILENO);
    ::close(out[0]);
    auto bin = actorserve_binary();
    ::execl(bin.c_str(), bin.c_str(), "serve", "--config", config_path.c_str(), "--port", "0",
            static_cast<char*>(nullptr));
    std::perror("exec actorserve");
    ::_exit(127);
  }
  ::close(out[1]);
  // Read stdout until the "listening on" line (or the process dies, or time runs out).
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + startup_timeout;
  while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    char buf[512];
    auto n = ::read(out[0], buf, sizeof buf);
    if (n <= 0)
      break;
    seen.append(buf, static_cast<std::size_t>(n));
    auto pos = seen.find("listening on http"); // (http:// or https://)
    if (pos != std::string::npos && seen.find("://", pos) != std::string::npos) {
      auto colon = seen.find(':', seen.find("://", pos) + 3);
      auto end = seen.find(' ', colon);
      if (colon != std::string::npos && end != std::string::npos)
        port_ = static_cast<uint16_t>(std::stoi(seen.substr(colon + 1, end - colon - 1)));
    }
  }
  ::close(out[0]);
  if (port_ == 0) {
    stop();
    throw std::runtime_error("actorserve did not start; stdout: " + seen + "\nlog:\n" + log());
  }
}

server_process::~server_process() {
  stop();
}

namespace {
int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
} // namespace

bool server_process::running() const {
  if (pid_ <= 0 || exited_)
    return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_)
    return true;
  exited_ = exit_code(status); // reaped here: stop() reports it
  return false;
}

std::string server_process::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int server_process::stop() {
  if (pid_ <= 0)
    return 0;
  if (exited_) {
    pid_ = -1;
    return *exited_;
  }
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return exit_code(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

void server_process::signal(int sig) const {
  if (pid_ > 0 && !exited_)
    ::kill(pid_, sig);
}

bool server_process::wait_ready(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    http_client c{port_, std::chrono::seconds(2)};
    if (c.get("/v2/health/ready").status == 200)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

double series(const std::string& text, const std::string& name_and_labels) {
  auto pos = text.find("\n" + name_and_labels + " ");
  if (pos == std::string::npos)
    return -1;
  return std::stod(text.substr(pos + name_and_labels.size() + 2));
}

int ready_workers(uint16_t port) {
  http_client c{port, std::chrono::seconds(5)};
  auto r = c.get("/metrics");
  int n = 0;
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("actorserve_worker_state{", 0) == 0 && line.find("state=\"ready\"") != std::string::npos
        && line.size() > 2 && line.substr(line.size() - 2) == " 1")
      ++n;
  return n;
}

std::string raw_exchange(uint16_t port, const std::vector<std::string>& pieces,
                         std::chrono::milliseconds pause, std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  stream.expires_after(timeout);
  stream.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port});
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0)
      std::this_thread::sleep_for(pause);
    asio::write(stream.socket(), asio::buffer(pieces[i]));
  }
  std::string out;
  char buf[4096];
  beast::error_code ec;
  while (!ec) {
    stream.expires_after(timeout);
    auto n = stream.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
  }
  return out;
}

stalled_connection::stalled_connection(uint16_t port, const std::string& bytes) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0)
    throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    auto why = std::string("connect: ") + std::strerror(errno);
    ::close(fd_);
    throw std::runtime_error(why);
  }
  send(bytes);
}

stalled_connection::~stalled_connection() {
  if (fd_ >= 0)
    ::close(fd_);
}

void stalled_connection::send(const std::string& more) {
  std::size_t sent = 0;
  while (sent < more.size()) {
    auto n = ::send(fd_, more.data() + sent, more.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return; // (the server closed it)
    sent += static_cast<std::size_t>(n);
  }
}

bool stalled_connection::closed_within(std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now()).count();
    if (left <= 0)
      return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0)
      continue;
    char buf[4096];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0)
      return true; // closed (or reset)
    received_.append(buf, static_cast<std::size_t>(n));
  }
}

struct http_client::impl {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  uint16_t port;
  std::chrono::milliseconds timeout;
  bool connected = false;
  beast::flat_buffer buffer;

  http_response exchange(http::request<http::string_body>& req) {
    http_response out;
    beast::error_code ec;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!connected) {
        stream.expires_after(timeout);
        stream.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port}, ec);
        if (ec) {
          out.error = "connect: " + ec.message();
          return out;
        }
        connected = true;
        buffer.clear();
      }
      stream.expires_after(timeout);
      http::write(stream, req, ec);
      if (ec) {
        connected = false;
        stream.socket().close();
        continue; // the server may have closed an idle keep-alive connection: retry once
      }
      http::response_parser<http::string_body> parser;
      parser.body_limit(1ull << 32);
      http::read(stream, buffer, parser, ec);
      if (ec) {
        out.error = "read: " + ec.message();
        connected = false;
        stream.socket().close();
        return out;
      }
      auto res = parser.release();
      out.status = res.result_int();
      out.body = std::move(res.body());
      for (auto& f : res) {
        std::string name(f.name_string());
        for (auto& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers[name] = std::string(f.value());
      }
      if (!res.keep_alive()) {
        connected = false;
        stream.socket().close();
      }
      return out;
    }
    return out;
  }
};

http_client::http_client(uint16_t port, std::chrono::milliseconds timeout) : impl_(new impl) {
  impl_->port = port;
  impl_->timeout = timeout;
}

http_client::~http_client() {
  delete impl_;
}

http_response http_client::get(const std::string& target) {
  http::request<http::string_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(true);
  return impl_->exchange(req);
}

http_response http_client::post(const std::string& target, const std::string& body,
                                const std::map<std::string, std::string>& headers) {
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  for (auto& kv : headers)
    req.set(kv.first, kv.second);
  req.body() = body;
  req.keep_alive(true);
  req.prepare_payload();
  return impl_->exchange(req);
}

namespace {

int terminate_child(pid_t pid) {
  ::kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

child_process::child_process(const std::vector<std::string>& argv) {
  log_path_ = write_temp_file("child_" + std::to_string(std::rand()) + ".log", "");
  pid_ = ::fork();
  if (pid_ == 0) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_TRUNC);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::perror("exec");
    ::_exit(127);
  }
}

child_process::~child_process() {
  if (pid_ > 0)
    terminate_child(pid_);
}

void child_process::kill_now() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string child_process::log() const {
  return read_file(log_path_);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (condition())
      return true;
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1))
    ++n;
  return n;
}

uint16_t free_port() {
  asio::io_context ioc;
  tcp::acceptor acc{ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  return acc.local_endpoint().port();
}

std::pair<int, std::string> run_command(const std::vector<std::string>& argv) {
  std::string cmd;
  for (auto& a : argv)
    cmd += "'" + a + "' ";
  cmd += "2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return {-1, "popen failed"};
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string make_certificates(const std::string& name, const std::vector<std::string>& cas,
                              const std::vector<std::pair<std::string, std::string>>& leaves) {
  auto dir = write_temp_file(name + "/.keep", "");
  dir = dir.substr(0, dir.rfind('/'));
  auto sh = [&](const std::string& cmd) {
    if (std::system(("cd '" + dir + "' && (" + cmd + ") >/dev/null 2>&1").c_str()) != 0)
      throw std::runtime_error("make_certificates: failed: " + cmd);
  };
  sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext");
  for (auto& ca : cas)
    sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + ca + " -keyout " + ca
       + ".key -out " + ca + ".pem");
  for (auto& [leaf, ca] : leaves)
    sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + leaf + " -keyout " + leaf + ".key -out "
       + leaf + ".csr && openssl x509 -req -days 2 -in " + leaf + ".csr -CA " + ca + ".pem -CAkey "
       + ca + ".key -CAcreateserial -extfile san.ext -out " + leaf + ".pem");
  return dir;
}

} // namespace actorserve::itest
