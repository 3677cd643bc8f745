// actorserve-bare-http: the HTTP ceiling of a machine. An asynchronous Beast server with the same
// I/O set-up as actorserve's (reserved read buffer, keep-alive, N I/O threads) that reads each
// request body and answers a fixed small JSON body, doing no work at all.
//   actorserve-bare-http PORT [IO_THREADS]
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

const std::string answer =
  R"({"model_name":"bare","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,1],"data":[0]}]})";

class session : public std::enable_shared_from_this<session> {
public:
  explicit session(tcp::socket s) : stream_(std::move(s)) { buffer_.reserve(1 << 20); }
  void read() {
    req_ = {};
    http::async_read(stream_, buffer_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec)
        return;
      auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, self->req_.version());
      res->set(http::field::content_type, "application/json");
      res->keep_alive(self->req_.keep_alive());
      res->body() = answer;
      res->prepare_payload();
      http::async_write(self->stream_, *res, [self, res](beast::error_code ec, std::size_t) {
        if (!ec && res->keep_alive())
          self->read();
      });
    });
  }

private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
};

void accept(tcp::acceptor& acc, asio::io_context& ioc) {
  acc.async_accept(asio::make_strand(ioc), [&](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<session>(std::move(s))->read();
    }
    accept(acc, ioc);
  });
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: actorserve-bare-http PORT [IO_THREADS]\n";
    return 2;
  }
  auto port = static_cast<uint16_t>(std::stoi(argv[1]));
  int threads = argc > 2 ? std::stoi(argv[2]) : 2;
  asio::io_context ioc;
  tcp::acceptor acc{ioc, {asio::ip::make_address("127.0.0.1"), port}};
  accept(acc, ioc);
  std::cout << "bare-http: listening on 127.0.0.1:" << acc.local_endpoint().port() << std::endl;
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&] { ioc.run(); });
  ioc.run();
}
