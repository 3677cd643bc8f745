// Request bodies compressed by the client (Content-Encoding: gzip or deflate, as NVIDIA Triton's
// clients send them with request_compression_algorithm), decoded before the request is read.
// Pure functions; the deflate decoder is Boost.Beast's (a port of zlib's inflate), the gzip
// (RFC 1952) and zlib (RFC 1950) framing and their checksums are checked here.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace actorserve {

enum class content_coding { identity, gzip, deflate };

/// The coding a Content-Encoding header names: "identity" (or empty), "gzip" ("x-gzip"),
/// "deflate" (zlib format; raw deflate streams, which some clients send, are taken too), case
/// and spaces ignored, "identity" entries of a list skipped. An error (invalid_input) names what
/// is not supported: another coding, or two codings applied one after the other.
caf::expected<content_coding> parse_content_coding(std::string_view header);

const char* to_string(content_coding c);

struct decoded_body {
  std::shared_ptr<char[]> data;
  std::size_t size = 0;
};

/// Decompresses `body` (gzip or deflate). Errors: invalid_input (not the coding's format, a checksum or length
/// that does not match, data after the end), payload_too_large (more than `limit` bytes: a
/// small body that inflates past max_body_bytes is refused as the large body it is).
caf::expected<decoded_body> decode_content(std::string_view body, content_coding coding,
                                           std::size_t limit);

} // namespace actorserve
