#include "net/http/content_coding.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <cstdint>
#include <cstring>

#include <boost/beast/core/string.hpp>
#include <boost/beast/zlib/deflate_stream.hpp>
#include <boost/beast/zlib/error.hpp>
#include <boost/beast/zlib/inflate_stream.hpp>
#include <boost/crc.hpp>

#include "runtime/error.hpp"

namespace actorserve {

namespace {

namespace zlib = boost::beast::zlib;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

uint32_t adler32(const char* p, std::size_t n) {
  uint32_t a = 1, b = 0;
  while (n > 0) {
    auto chunk = std::min<std::size_t>(n, 5552); // the most bytes before the sums can overflow
    n -= chunk;
    for (; chunk > 0; --chunk) {
      a += static_cast<unsigned char>(*p++);
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return (b << 16) | a;
}

uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}

/// An Accept-Encoding entry's q-value ("q=0.5" among its parameters; 1 without one), or -1 where
/// it is malformed.
double q_value(std::string_view params) {
  double q = 1;
  while (!params.empty()) {
    auto semi = params.find(';');
    auto p = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    if (p.size() < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=')
      continue; // (another parameter: none is defined, none matters)
    auto v = p.substr(2);
    auto res = std::from_chars(v.data(), v.data() + v.size(), q);
    if (res.ec != std::errc{} || res.ptr != v.data() + v.size() || !(q >= 0 && q <= 1))
      return -1;
  }
  return q;
}

} // namespace

const char* to_string(content_coding c) {
  switch (c) {
    case content_coding::identity: return "identity";
    case content_coding::gzip: return "gzip";
    case content_coding::deflate: return "deflate";
  }
  return "?";
}

caf::expected<content_coding> parse_content_coding(std::string_view header) {
  const auto whole = trim(header);
  auto coding = content_coding::identity;
  bool named = false;
  while (true) {
    auto comma = header.find(',');
    auto item = trim(header.substr(0, comma));
    using boost::beast::iequals;
    if (!item.empty() && !iequals(item, "identity")) {
      content_coding c;
      if (iequals(item, "gzip") || iequals(item, "x-gzip"))
        c = content_coding::gzip;
      else if (iequals(item, "deflate"))
        c = content_coding::deflate;
      else
        return make_error(errc::invalid_input,
                          "Content-Encoding '" + std::string(item)
                            + "' is not supported; send the body as it is or with gzip or deflate");
      if (named)
        return make_error(errc::invalid_input, "Content-Encoding '" + std::string(whole)
                                                 + "' applies several codings; send one (gzip or "
                                                   "deflate)");
      coding = c;
      named = true;
    }
    if (comma == std::string_view::npos)
      break;
    header.remove_prefix(comma + 1);
  }
  return coding;
}

namespace {

/// The framing around a body's deflate stream: where the stream starts, the trailer's length,
/// and whether it is zlib's (Adler-32) rather than gzip's (CRC-32 and length) or none (raw).
struct deflate_framing {
  std::size_t start = 0;
  std::size_t trailer = 0;
  bool zlib_format = false;
};

/// The gzip header's length (RFC 1952: flags, FEXTRA, FNAME, FCOMMENT, FHCRC), or what is wrong.
caf::expected<deflate_framing> gzip_framing(std::string_view body, const std::string& what) {
  auto bad = [&](const std::string& msg) { return make_error(errc::invalid_input, what + ": " + msg); };
  auto u = [&](std::size_t i) { return static_cast<unsigned char>(body[i]); };
  if (body.size() < 2 || u(0) != 0x1f || u(1) != 0x8b)
    return bad("not gzip data (it does not start with a gzip header)");
  if (body.size() < 18)
    return bad("the gzip data is truncated");
  if (u(2) != 8)
    return bad("gzip compression method " + std::to_string(u(2)) + " is not deflate (8)");
  auto flags = u(3);
  if (flags & 0xE0)
    return bad("reserved gzip header flags are set");
  deflate_framing f;
  f.start = 10;
  if (flags & 0x04) { // FEXTRA: a length, then that many bytes
    if (f.start + 2 > body.size())
      return bad("the gzip header is truncated");
    f.start += 2 + (u(f.start) | u(f.start + 1) << 8);
  }
  for (unsigned flag : {0x08u, 0x10u}) // FNAME, FCOMMENT: zero-terminated
    if (flags & flag) {
      auto zero = f.start < body.size() ? body.find('\0', f.start) : std::string_view::npos;
      if (zero == std::string_view::npos)
        return bad("the gzip header is truncated");
      f.start = zero + 1;
    }
  if (flags & 0x02) // FHCRC: the header's own CRC (not checked: the data's CRC is)
    f.start += 2;
  if (f.start > body.size())
    return bad("the gzip header is truncated");
  f.trailer = 8; // CRC32 and ISIZE, little-endian
  return f;
}

/// Deflate's framing: a zlib header (RFC 1950) where the body starts with one, else raw.
caf::expected<deflate_framing> deflate_framing_of(std::string_view body, const std::string& what) {
  auto u = [&](std::size_t i) { return static_cast<unsigned char>(body[i]); };
  deflate_framing f;
  if (body.size() >= 2 && (u(0) & 0x0f) == 8 && (u(0) >> 4) <= 7 && ((u(0) << 8) | u(1)) % 31 == 0) {
    if (u(1) & 0x20)
      return make_error(errc::invalid_input,
                        what + ": the zlib stream needs a preset dictionary");
    f.zlib_format = true;
    f.start = 2;
    f.trailer = 4; // Adler-32, big-endian
  }
  return f;
}

/// What inflating produced: the bytes, and the input left after the stream's end.
struct inflated {
  std::shared_ptr<char[]> out;
  std::size_t produced = 0;
  std::size_t left = 0;
};

/// Inflates `input` into a buffer that grows up to one byte past `limit` (a stream that fills
/// it is over the limit: payload_too_large).
caf::expected<inflated> inflate_all(std::string_view input, std::size_t body_size,
                                    std::size_t limit, const std::string& what) {
  zlib::inflate_stream inflater;
  zlib::z_params zs;
  zs.next_in = input.data();
  zs.avail_in = input.size();
  const std::size_t most = limit + 1;
  std::size_t capacity = std::min(most, std::max<std::size_t>(body_size * 4, 64 * 1024));
  inflated r;
  r.out.reset(new char[std::max<std::size_t>(capacity, 1)]);
  while (true) {
    zs.next_out = r.out.get() + r.produced;
    zs.avail_out = capacity - r.produced;
    const auto in_before = zs.avail_in;
    boost::beast::error_code ec;
    inflater.write(zs, zlib::Flush::none, ec);
    const auto made = capacity - zs.avail_out - r.produced;
    r.produced += made;
    if (ec == zlib::error::end_of_stream)
      break;
    if (ec && ec != zlib::error::need_buffers)
      return make_error(errc::invalid_input, what + ": corrupt compressed data (" + ec.message() + ")");
    if (zs.avail_out > 0) { // room left: it wants more input
      if (zs.avail_in == 0 || (zs.avail_in == in_before && made == 0))
        return make_error(errc::invalid_input,
                          what + ": the compressed data ends before its end of stream");
      continue;
    }
    if (capacity == most)
      return make_error(errc::payload_too_large, what + ": it decompresses to more than the limit of "
                                                   + std::to_string(limit) + " bytes (max_body_bytes)");
    auto bigger = std::min(most, capacity * 2);
    std::shared_ptr<char[]> grown(new char[bigger]);
    std::memcpy(grown.get(), r.out.get(), r.produced);
    r.out = std::move(grown);
    capacity = bigger;
  }
  r.left = zs.avail_in;
  return r;
}

/// The trailer's checks of the decompressed data: gzip's CRC-32 and length, zlib's Adler-32.
caf::error check_trailer(const unsigned char* t, const inflated& r, bool gzip, bool zlib_format,
                         const std::string& what) {
  auto bad = [&](const std::string& msg) { return make_error(errc::invalid_input, what + ": " + msg); };
  if (gzip) {
    boost::crc_32_type crc;
    crc.process_bytes(r.out.get(), r.produced);
    if (crc.checksum() != le32(t))
      return bad("the CRC-32 of the decompressed data does not match the gzip trailer's");
    if (static_cast<uint32_t>(r.produced) != le32(t + 4))
      return bad("the decompressed length does not match the gzip trailer's");
  } else if (zlib_format) {
    uint32_t want = uint32_t(t[0]) << 24 | uint32_t(t[1]) << 16 | uint32_t(t[2]) << 8 | t[3];
    if (adler32(r.out.get(), r.produced) != want)
      return bad("the Adler-32 of the decompressed data does not match the zlib trailer's");
  }
  return caf::none;
}

} // namespace

caf::expected<decoded_body> decode_content(std::string_view body, content_coding coding,
                                           std::size_t limit) {
  const std::string what = std::string("request body (Content-Encoding ") + to_string(coding) + ")";
  auto bad = [&](const std::string& msg) { return make_error(errc::invalid_input, what + ": " + msg); };
  if (coding == content_coding::identity)
    return make_error(errc::internal, what + ": nothing to decode");
  auto framing = coding == content_coding::gzip ? gzip_framing(body, what)
                                                : deflate_framing_of(body, what);
  if (!framing)
    return std::move(framing.error());
  auto [start, trailer, zlib_format] = *framing;
  // Beast's inflate needs one byte past the end of the deflate stream before it reports the end,
  // and may keep that byte: so the trailer is read from the end of the body, the stream may end
  // one byte into it, and a raw stream (no trailer) gets one byte of padding.
  if (start + trailer > body.size())
    return bad(std::string("the ") + (zlib_format ? "zlib" : "gzip") + " data is truncated");
  std::string padded;
  auto input = body.substr(start);
  if (trailer == 0) {
    padded.reserve(input.size() + 1);
    padded.append(input).push_back('\0');
    input = padded;
  }
  const std::size_t after = trailer == 0 ? 1 : trailer; // input after the stream's end
  auto r = inflate_all(input, body.size(), limit, what);
  if (!r)
    return std::move(r.error());
  if (r->left + 1 < after) // it ended in the trailer: the body was cut short
    return bad("the compressed data ends before its end of stream");
  if (r->left > after)
    return bad("data follows the end of the compressed stream");
  if (r->produced > limit) // (it ended exactly at the end of the room given)
    return make_error(errc::payload_too_large, what + ": it decompresses to more than the limit of "
                                                 + std::to_string(limit) + " bytes (max_body_bytes)");
  auto t = reinterpret_cast<const unsigned char*>(body.data() + body.size() - trailer);
  if (auto err = check_trailer(t, *r, coding == content_coding::gzip, zlib_format, what))
    return err;
  decoded_body out;
  out.data = std::move(r->out);
  out.size = r->produced;
  return out;
}

content_coding choose_response_coding(std::string_view header) {
  // Each coding's q-value where the header names it; -1 where not.
  double gzip = -1, deflate = -1, identity = -1, any = -1;
  while (!header.empty()) {
    auto comma = header.find(',');
    auto item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    auto semi = item.find(';');
    auto name = trim(item.substr(0, semi));
    auto q = q_value(semi == std::string_view::npos ? std::string_view{} : item.substr(semi + 1));
    if (name.empty() || q < 0)
      continue;
    using boost::beast::iequals;
    double* slot = iequals(name, "gzip") || iequals(name, "x-gzip") ? &gzip
                   : iequals(name, "deflate")                       ? &deflate
                   : iequals(name, "identity")                      ? &identity
                   : name == "*"                                    ? &any
                                                                    : nullptr;
    if (slot)
      *slot = std::max(*slot, q);
  }
  if (gzip < 0)
    gzip = any;
  if (deflate < 0)
    deflate = any;
  // Identity not named is acceptable (RFC 9110) but the least wanted: a client that names a
  // coding it accepts gets it.
  const double plain = std::max(identity, 0.0);
  const double best = std::max(gzip, deflate);
  if (best <= 0 || best < plain)
    return content_coding::identity;
  return gzip >= deflate ? content_coding::gzip : content_coding::deflate;
}

std::string encode_content(std::string_view body, content_coding coding, int level) {
  if (coding == content_coding::identity)
    return std::string(body);
  level = std::clamp(level, 1, 9);
  const bool gz = coding == content_coding::gzip;
  const std::size_t head = gz ? 10 : 2, tail = gz ? 8 : 4;
  zlib::deflate_stream deflater;
  deflater.reset(level, 15, 8, zlib::Strategy::normal);
  std::string out(head + deflater.upper_bound(body.size()) + tail, '\0');
  if (gz) { // magic, deflate, no flags, no time, extra flags (fastest / best), OS unknown
    const unsigned char h[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0,
                                 static_cast<unsigned char>(level == 1 ? 4 : level == 9 ? 2 : 0),
                                 255};
    std::memcpy(out.data(), h, sizeof h);
  } else { // CMF: deflate with a 32 KiB window; FLG: the level's hint, a multiple of 31 in all
    out[0] = 0x78;
    out[1] = static_cast<char>(level == 1 ? 0x01 : level < 6 ? 0x5e : level == 6 ? 0x9c : 0xda);
  }
  zlib::z_params zs;
  zs.next_in = body.data();
  zs.avail_in = body.size();
  std::size_t produced = 0;
  while (true) {
    zs.next_out = out.data() + head + produced;
    zs.avail_out = out.size() - tail - head - produced;
    const auto room = zs.avail_out;
    boost::beast::error_code ec;
    deflater.write(zs, zlib::Flush::finish, ec);
    produced += room - zs.avail_out;
    if (ec == zlib::error::end_of_stream)
      break;
    if (ec && ec != zlib::error::need_buffers)
      throw std::runtime_error("deflate failed: " + ec.message());
    out.resize(out.size() * 2); // (upper_bound is a bound: not expected)
  }
  out.resize(head + produced + tail);
  char* t = out.data() + head + produced;
  if (gz) {
    boost::crc_32_type crc;
    crc.process_bytes(body.data(), body.size());
    put_le32(t, crc.checksum());
    put_le32(t + 4, static_cast<uint32_t>(body.size()));
  } else {
    auto a = adler32(body.data(), body.size());
    for (int i = 0; i < 4; ++i)
      t[i] = static_cast<char>(a >> (24 - 8 * i));
  }
  return out;
}

bool worth_compressing(std::size_t bytes, bool binary_tensors, uint32_t level,
                       uint64_t min_bytes) {
  return level > 0 && !binary_tensors && bytes > 0 && bytes >= min_bytes;
}

} // namespace actorserve
