// net/http/response_head.hpp — an HTTP/1.x response's status line and header fields, written
// straight into one string that the connection reuses, and sent with the body in one gather
// write. Beast's message and serializer cost an allocation per field and a walk of nested buffer
// views per write, several per cent of a node's time at high request rates; the answers a front
// sends are a handful of known fields.
//
// Values are the server's own or were read from a request by Beast's parser (which refuses CR
// and LF in them): nothing here escapes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace actorserve {

class response_head {
public:
  /// Starts `out` (cleared, its capacity kept) with the status line: "HTTP/1.1 200 OK".
  /// `version` is 10 or 11, as Beast numbers them.
  response_head(std::string& out, unsigned status, unsigned version);

  response_head& field(std::string_view name, std::string_view value);
  response_head& field(std::string_view name, std::size_t value);

  /// Ends the head: Content-Length, the Connection field the version needs to say
  /// `keep_alive` (HTTP/1.1 says only "close"; HTTP/1.0 only "keep-alive"), the blank line.
  void finish(std::size_t content_length, bool keep_alive);

private:
  void number(std::size_t value);

  std::string& out_;
  unsigned version_;
};

} // namespace actorserve
