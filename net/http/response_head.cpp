#include "net/http/response_head.hpp"

#include <charconv>
#include <ostream> // (Beast's string_view needs it declared)

#include <boost/beast/http/status.hpp>

namespace actorserve {

response_head::response_head(std::string& out, unsigned status, unsigned version)
  : out_(out), version_(version) {
  out_.clear();
  out_ += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  number(status);
  out_ += ' ';
  auto reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  out_.append(reason.data(), reason.size());
  out_ += "\r\n";
}

response_head& response_head::field(std::string_view name, std::string_view value) {
  out_.append(name);
  out_ += ": ";
  out_.append(value);
  out_ += "\r\n";
  return *this;
}

response_head& response_head::field(std::string_view name, std::size_t value) {
  out_.append(name);
  out_ += ": ";
  number(value);
  out_ += "\r\n";
  return *this;
}

void response_head::number(std::size_t value) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out_.append(digits, end);
}

void response_head::finish(std::size_t content_length, bool keep_alive) {
  field("Content-Length", content_length);
  if (version_ == 10 && keep_alive)
    out_ += "Connection: keep-alive\r\n";
  else if (version_ != 10 && !keep_alive)
    out_ += "Connection: close\r\n";
  out_ += "\r\n";
}

} // namespace actorserve
