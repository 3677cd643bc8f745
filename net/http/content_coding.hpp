// HTTP content codings both ways: request bodies compressed by the client (Content-Encoding: gzip
// or deflate, as NVIDIA Triton's clients send them with request_compression_algorithm), decoded
// before the request is read, and responses compressed for a client that accepts it
// (Accept-Encoding, as Triton's clients ask with response_compression_algorithm).
// Pure functions; deflate itself is Boost.Beast's (a port of zlib's inflate and deflate), the gzip
// (RFC 1952) and zlib (RFC 1950) framing and their checksums are written and checked here.
#pragma once

#include <cstddef>
#include <cstdint>
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

/// The coding to answer in, by an Accept-Encoding header (RFC 9110 12.5.3): the supported
/// coding (gzip, then deflate) with the highest q-value above 0 and not below identity's ("*"
/// stands for those not named), or identity: for no header, an empty one, or one that accepts
/// neither. Malformed entries are skipped rather than refused: identity is always a safe answer.
content_coding choose_response_coding(std::string_view accept_encoding);

/// Whether an answer of `bytes` is compressed for a client that accepts it: at a `level` above 0,
/// from `min_bytes` on, and only when it is all text (JSON, metrics): an answer that carries
/// binary tensor data is not. Float tensors shrink by some 7% at level 1 for about 26 MB/s of
/// the I/O thread's time: for a 19 MB answer, a third of the request's time, for nothing a
/// client on a network wants.
bool worth_compressing(std::size_t bytes, bool binary_tensors, uint32_t level,
                       uint64_t min_bytes);

/// `body` compressed with `coding` (gzip or deflate, the latter in zlib format as RFC 9110 says)
/// at zlib `level` 1 (fastest) to 9 (smallest).
std::string encode_content(std::string_view body, content_coding coding, int level);

} // namespace actorserve
