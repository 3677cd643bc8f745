#include <catch2/catch.hpp>

#include <random>
#include <string>

#include <boost/beast/zlib/deflate_stream.hpp>
#include <boost/crc.hpp>

#include "net/http/content_coding.hpp"
#include "runtime/error.hpp"

using namespace actorserve;

namespace {

/// The bytes of a literal, zeros included.
template <std::size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

const std::string text = "hello, hello, hello, hello!";
// Python's gzip.compress(text, mtime=0), the same with a file name, and zlib.compress(text).
const std::string gz = bytes("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcb\x48\xcd\xc9\xc9\xd7\x51\xc8\xc0"
                     "\xa4\x14\x01\x0b\xd8\x1d\x85\x1b\x00\x00\x00");
const std::string gz_named = bytes("\x1f\x8b\x08\x08\x00\x00\x00\x00\x02\xff\x74\x2e\x6a\x73\x6f\x6e\x00"
                           "\xcb\x48\xcd\xc9\xc9\xd7\x51\xc8\xc0\xa4\x14\x01\x0b\xd8\x1d\x85\x1b"
                           "\x00\x00\x00");
const std::string zl = bytes("\x78\x9c\xcb\x48\xcd\xc9\xc9\xd7\x51\xc8\xc0\xa4\x14\x01\x85\x6c\x09\x56");

std::string decoded(const std::string& body, content_coding c, std::size_t limit = 1 << 20) {
  auto r = decode_content(body, c, limit);
  if (!r)
    FAIL(error_message(r.error()));
  return std::string(r->data.get(), r->size);
}

std::string error_of(const std::string& body, content_coding c, std::size_t limit = 1 << 20) {
  auto r = decode_content(body, c, limit);
  REQUIRE_FALSE(r);
  return error_message(r.error());
}

/// `in` as a raw deflate stream (Beast's deflate), at `level`.
std::string deflate_raw(const std::string& in, int level) {
  std::string out(in.size() + in.size() / 10 + 64, '\0');
  boost::beast::zlib::deflate_stream ds;
  ds.reset(level, 15, 8, boost::beast::zlib::Strategy::normal);
  boost::beast::zlib::z_params zs;
  zs.next_in = in.data();
  zs.avail_in = in.size();
  zs.next_out = out.data();
  zs.avail_out = out.size();
  boost::beast::error_code ec;
  while (!ec)
    ds.write(zs, boost::beast::zlib::Flush::finish, ec);
  REQUIRE(ec == boost::beast::zlib::error::end_of_stream);
  out.resize(out.size() - zs.avail_out);
  return out;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

} // namespace

TEST_CASE("bodies of every length and content decode in all three formats", "[content-coding]") {
  // Where a deflate stream ends within its last byte varies with the data: the decoder must
  // find the trailer whatever it is.
  std::mt19937 rng(7);
  for (std::size_t n : {0, 1, 2, 3, 7, 100, 257, 1000, 4096, 65535, 65536, 200'000}) {
    for (int level : {0, 1, 6, 9}) {
      std::string in(n, '\0');
      auto alphabet = 2 + rng() % 250; // from very compressible to barely
      for (auto& c : in)
        c = static_cast<char>(rng() % alphabet);
      auto raw = deflate_raw(in, level);
      boost::crc_32_type crc;
      crc.process_bytes(in.data(), in.size());
      auto gzip = bytes("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff") + raw + le32(crc.checksum())
                  + le32(static_cast<uint32_t>(n));
      uint32_t a = 1, b = 0;
      for (unsigned char c : in) {
        a = (a + c) % 65521;
        b = (b + a) % 65521;
      }
      auto adler = (b << 16) | a;
      std::string be(4, '\0');
      for (int i = 0; i < 4; ++i)
        be[static_cast<std::size_t>(i)] = static_cast<char>(adler >> (24 - 8 * i));
      auto zlib = bytes("\x78\x9c") + raw + be;
      INFO("length " << n << ", level " << level);
      CHECK(decoded(gzip, content_coding::gzip) == in);
      CHECK(decoded(zlib, content_coding::deflate) == in);
      CHECK(decoded(raw, content_coding::deflate) == in);
    }
  }
}

TEST_CASE("Content-Encoding names gzip, deflate or identity, others are refused by name",
          "[content-coding]") {
  CHECK(*parse_content_coding("") == content_coding::identity);
  CHECK(*parse_content_coding("identity") == content_coding::identity);
  CHECK(*parse_content_coding("gzip") == content_coding::gzip);
  CHECK(*parse_content_coding(" X-GZIP ") == content_coding::gzip);
  CHECK(*parse_content_coding("Deflate") == content_coding::deflate);
  CHECK(*parse_content_coding("identity, gzip") == content_coding::gzip);
  auto br = parse_content_coding("br");
  REQUIRE_FALSE(br);
  CHECK(error_message(br.error())
        == "Content-Encoding 'br' is not supported; send the body as it is or with gzip or deflate");
  auto twice = parse_content_coding("gzip, deflate");
  REQUIRE_FALSE(twice);
  CHECK(error_message(twice.error())
        == "Content-Encoding 'gzip, deflate' applies several codings; send one (gzip or deflate)");
}

TEST_CASE("gzip and zlib bodies decode, raw deflate is taken as deflate", "[content-coding]") {
  CHECK(decoded(gz, content_coding::gzip) == text);
  CHECK(decoded(gz_named, content_coding::gzip) == text); // a header with a file name
  CHECK(decoded(zl, content_coding::deflate) == text);
  CHECK(decoded(zl.substr(2, zl.size() - 6), content_coding::deflate) == text); // no zlib frame
  auto zeros = deflate_raw(std::string(300'000, '\0'), 6);
  CHECK(decoded(zeros, content_coding::deflate) == std::string(300'000, '\0'));
}

TEST_CASE("corrupt, truncated or padded compressed bodies are refused with what is wrong",
          "[content-coding]") {
  const std::string pre = "request body (Content-Encoding gzip): ";
  CHECK(error_of(text, content_coding::gzip)
        == pre + "not gzip data (it does not start with a gzip header)");
  // Cut short: the trailer read from the end is part of the data, which then ends early.
  CHECK(error_of(gz.substr(0, gz.size() - 3), content_coding::gzip)
        == pre + "the compressed data ends before its end of stream");
  CHECK(error_of(gz.substr(0, 12), content_coding::gzip) == pre + "the gzip data is truncated");
  // Bytes after it (a second gzip member too: one is taken, as Triton's clients send).
  CHECK(error_of(gz + "xy", content_coding::gzip)
        == pre + "data follows the end of the compressed stream");
  CHECK(error_of(gz + gz, content_coding::gzip)
        == pre + "data follows the end of the compressed stream");
  auto raw = zl.substr(2, zl.size() - 6);
  CHECK(error_of(raw + "xyz", content_coding::deflate)
        == "request body (Content-Encoding deflate): data follows the end of the compressed stream");
  auto bad_crc = gz;
  bad_crc[gz.size() - 8] ^= 1;
  CHECK(error_of(bad_crc, content_coding::gzip)
        == pre + "the CRC-32 of the decompressed data does not match the gzip trailer's");
  auto bad_len = gz;
  bad_len[gz.size() - 4] ^= 1;
  CHECK(error_of(bad_len, content_coding::gzip)
        == pre + "the decompressed length does not match the gzip trailer's");
  auto bad_adler = zl;
  bad_adler.back() ^= 1;
  CHECK(error_of(bad_adler, content_coding::deflate)
        == "request body (Content-Encoding deflate): the Adler-32 of the decompressed data does "
           "not match the zlib trailer's");
  CHECK(error_of(std::string("\xff\xff\xff\xff", 4), content_coding::deflate)
          .rfind("request body (Content-Encoding deflate): corrupt compressed data", 0)
        == 0);
}

TEST_CASE("a body that inflates past the limit is refused as too large, at the limit it is not",
          "[content-coding]") {
  auto zeros = deflate_raw(std::string(300'000, '\0'), 6); // ~300 bytes in
  auto r = decode_content(zeros, content_coding::deflate, 299'999);
  REQUIRE_FALSE(r);
  CHECK(error_code(r.error()) == errc::payload_too_large);
  CHECK(error_message(r.error())
        == "request body (Content-Encoding deflate): it decompresses to more than the limit of "
           "299999 bytes (max_body_bytes)");
  CHECK(decoded(zeros, content_coding::deflate, 300'000).size() == 300'000);
}

TEST_CASE("responses compress to gzip and zlib data that decode to the same bytes",
          "[content-coding]") {
  std::mt19937 rng(11);
  for (std::size_t n : {0, 1, 2, 100, 1000, 65536, 300'000}) {
    for (int level : {1, 6, 9}) {
      std::string in(n, '\0');
      auto alphabet = 2 + rng() % 250;
      for (auto& c : in)
        c = static_cast<char>(rng() % alphabet);
      INFO("length " << n << ", level " << level);
      auto gzip = encode_content(in, content_coding::gzip, level);
      REQUIRE(gzip.size() >= 18);
      CHECK(static_cast<unsigned char>(gzip[0]) == 0x1f);
      CHECK(static_cast<unsigned char>(gzip[1]) == 0x8b);
      CHECK(decoded(gzip, content_coding::gzip) == in);
      auto zlib = encode_content(in, content_coding::deflate, level);
      REQUIRE(zlib.size() >= 6);
      // The zlib header: deflate with a 32 KiB window, its check bits right (RFC 1950).
      CHECK(static_cast<unsigned char>(zlib[0]) == 0x78);
      CHECK((static_cast<unsigned char>(zlib[0]) * 256 + static_cast<unsigned char>(zlib[1])) % 31
            == 0);
      CHECK(decoded(zlib, content_coding::deflate) == in);
    }
  }
  // Text compresses: a JSON answer of numbers to well under half.
  std::string json = "{\"outputs\":[{\"data\":[";
  for (int i = 0; i < 1000; ++i)
    json += std::to_string(i % 17) + ".25,";
  json += "0]}]}";
  CHECK(encode_content(json, content_coding::gzip, 1).size() < json.size() / 2);
}

TEST_CASE("Accept-Encoding picks gzip, deflate or identity by q-value", "[content-coding]") {
  auto pick = [](std::string_view h) { return choose_response_coding(h); };
  CHECK(pick("") == content_coding::identity);
  CHECK(pick("identity") == content_coding::identity);
  CHECK(pick("gzip") == content_coding::gzip);
  CHECK(pick("x-gzip") == content_coding::gzip);
  CHECK(pick("deflate") == content_coding::deflate);
  CHECK(pick("GZIP") == content_coding::gzip);
  CHECK(pick("br") == content_coding::identity); // (nothing supported)
  CHECK(pick("br, deflate") == content_coding::deflate);
  CHECK(pick("gzip, deflate, br") == content_coding::gzip); // (a browser's; ties go to gzip)
  CHECK(pick("deflate, gzip") == content_coding::gzip);
  CHECK(pick("gzip;q=0.5, deflate") == content_coding::deflate);
  CHECK(pick("gzip ; q=0.9 , deflate;q=0.8") == content_coding::gzip);
  CHECK(pick("gzip;q=0") == content_coding::identity);
  CHECK(pick("gzip;q=0.000") == content_coding::identity);
  CHECK(pick("gzip;q=0.5") == content_coding::gzip); // (unnamed identity is the least wanted)
  CHECK(pick("gzip;q=0.5, identity") == content_coding::identity);
  CHECK(pick("gzip, identity") == content_coding::gzip);
  CHECK(pick("*") == content_coding::gzip);
  CHECK(pick("*;q=0") == content_coding::identity);
  CHECK(pick("gzip;q=0, *") == content_coding::deflate);
  CHECK(pick("identity;q=1, *;q=0") == content_coding::identity);
  // Malformed entries are skipped, not taken.
  CHECK(pick("gzip;q=2") == content_coding::identity);
  CHECK(pick("gzip;q=abc, deflate") == content_coding::deflate);
  CHECK(pick("gzip;q=") == content_coding::identity);
  CHECK(pick(",,, ;q=1, gzip") == content_coding::gzip);
  CHECK(pick("gzip;level=3") == content_coding::gzip); // (an unknown parameter is ignored)
}

TEST_CASE("only text answers are compressed: from the minimum size on, never binary tensors",
          "[content-coding]") {
  CHECK(worth_compressing(2048, false, 1, 1024));
  CHECK(worth_compressing(1024, false, 9, 1024));
  CHECK_FALSE(worth_compressing(1023, false, 1, 1024)); // too small to gain
  CHECK_FALSE(worth_compressing(2048, false, 0, 1024)); // compression off
  CHECK_FALSE(worth_compressing(19 << 20, true, 1, 1024)); // binary tensor data
  CHECK_FALSE(worth_compressing(0, false, 1, 0));
}
