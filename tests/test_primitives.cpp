#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include "../websocket.hpp"

// Tests for §0 Primitives of websocket.hpp: byte order, ASCII helpers, SHA-1, Base64,
// accept_key, UTF-8 validation and random_bytes.

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

// Like REQUIRE (which doctest does not offer under -fno-exceptions): check, and on failure
// leave the test case. The condition must be free of side effects (it is evaluated twice).
#define ENSURE(...)              \
  do {                           \
    CHECK(__VA_ARGS__);          \
    if (!(__VA_ARGS__)) return;  \
  } while (false)

// Counts UndefinedBehaviorSanitizer reports (a weak hook of the UBSan runtime, called for
// each report; without -fsanitize=undefined it is never called). Lets a test assert that a
// call is free of undefined behaviour even when UBSan is built to recover and continue.
static int g_ubsan_reports = 0;
extern "C" void __ubsan_on_report() { ++g_ubsan_reports; }

namespace {

// ---- helpers -------------------------------------------------------------------------------

std::string to_hex(const std::uint8_t* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string hex(const std::array<std::uint8_t, 20>& d) { return to_hex(d.data(), d.size()); }

std::string sha1_hex(const std::string& s) { return hex(ws::sha1(s.data(), s.size())); }

// Builds a string from byte values (so NUL and high bytes are easy to write).
std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s += static_cast<char>(static_cast<unsigned char>(v));
  return s;
}

// Our own UTF-8 encoder (RFC 3629 §3) for any value up to 0x10FFFF (surrogates included,
// so tests can produce their encodings on purpose).
void encode_utf8(std::uint32_t cp, std::string& out) {
  auto put = [&](std::uint32_t b) { out += static_cast<char>(static_cast<unsigned char>(b)); };
  if (cp < 0x80) {
    put(cp);
  } else if (cp < 0x800) {
    put(0xC0 | (cp >> 6));
    put(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    put(0xE0 | (cp >> 12));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  } else {
    put(0xF0 | (cp >> 18));
    put(0x80 | ((cp >> 12) & 0x3F));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  }
}

// Our own reference decoder, written from RFC 3629 rules rather than the table of byte ranges:
// decode each sequence by its lead-byte bit pattern, then reject overlong forms, surrogates
// and values above U+10FFFF. For a sequence cut short by the end of the input it decides
// whether *some* continuation could still make it valid (the range of code points the
// present bytes allow must meet the allowed range).
enum class Ref { valid, incomplete, invalid };

Ref ref_classify(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::uint32_t b = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0, min_cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F, min_cp = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F, min_cp = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07, min_cp = 0x10000;
    } else {
      return Ref::invalid;  // continuation byte as lead, or 5/6-byte/FE/FF lead
    }
    std::size_t have = 1;
    for (; have < len && i + have < s.size(); ++have) {
      const std::uint32_t c = static_cast<unsigned char>(s[i + have]);
      if ((c & 0xC0) != 0x80) return Ref::invalid;
      cp = (cp << 6) | (c & 0x3F);
    }
    const unsigned missing_bits = static_cast<unsigned>(6 * (len - have));
    const std::uint32_t lo = cp << missing_bits;
    const std::uint32_t hi = lo | ((std::uint32_t{1} << missing_bits) - 1);
    const std::uint32_t a = std::max(lo, min_cp);
    const std::uint32_t z = std::min(hi, std::uint32_t{0x10FFFF});
    if (a > z) return Ref::invalid;
    if (a >= 0xD800 && z <= 0xDFFF) return Ref::invalid;
    if (have < len) return Ref::incomplete;  // only possible at the very end
    i += len;
  }
  return Ref::valid;
}

bool ref_valid(const std::string& s) { return ref_classify(s) == Ref::valid; }

// Validates s with two feed() calls split at `at`: 1 valid, 0 invalid, -1 when feed()
// succeeded again after a failure (fail-fast broken).
int split_verdict(const std::string& s, std::size_t at) {
  ws::Utf8Validator v;
  const bool a = v.feed(s.data(), at);
  const bool b = v.feed(s.data() + at, s.size() - at);
  if (!a && b) return -1;
  return (a && b && v.complete()) ? 1 : 0;
}

// The same, one byte per feed() call.
int bytewise_verdict(const std::string& s) {
  ws::Utf8Validator v;
  bool ok = true;
  for (char c : s) {
    const bool r = v.feed(&c, 1);
    if (!ok && r) return -1;
    ok = ok && r;
  }
  return (ok && v.complete()) ? 1 : 0;
}

int verdict(bool valid) { return valid ? 1 : 0; }

}  // namespace

// =====================================================================================
// Byte order
// =====================================================================================

TEST_CASE("byte order: load_be16/32/64 read network byte order") {
  const std::uint8_t a[] = {0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0};
  CHECK(ws::detail::load_be16(a) == 0x1234u);
  CHECK(ws::detail::load_be32(a) == 0x12345678u);
  CHECK(ws::detail::load_be64(a) == 0x123456789ABCDEF0ull);
  const std::uint8_t hi[] = {0xFF, 0xFE, 0x80, 0x01, 0x80, 0x00, 0x00, 0x7F};
  CHECK(ws::detail::load_be16(hi) == 0xFFFEu);
  CHECK(ws::detail::load_be32(hi) == 0xFFFE8001u);
  CHECK(ws::detail::load_be64(hi) == 0xFFFE80018000007Full);
  CHECK(ws::detail::load_be16(hi + 2) == 0x8001u);
  CHECK(ws::detail::load_be32(hi + 4) == 0x8000007Fu);
}

TEST_CASE("byte order: store_be16/32/64 write network byte order") {
  std::uint8_t b[8] = {};
  ws::detail::store_be16(b, 0xA1B2);
  CHECK(to_hex(b, 2) == "a1b2");
  ws::detail::store_be32(b, 0x01020304u);
  CHECK(to_hex(b, 4) == "01020304");
  ws::detail::store_be64(b, 0x8877665544332211ull);
  CHECK(to_hex(b, 8) == "8877665544332211");
  ws::detail::store_be64(b, 126);
  CHECK(to_hex(b, 8) == "000000000000007e");
  ws::detail::store_be16(b, 0xFFFF);
  CHECK(to_hex(b, 2) == "ffff");
}

TEST_CASE("byte order: store then load round trips") {
  std::mt19937_64 rng(12345);
  std::uint8_t b[8];
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t v = rng();
    ws::detail::store_be64(b, v);
    CHECK(ws::detail::load_be64(b) == v);
    CHECK(ws::detail::load_be32(b) == static_cast<std::uint32_t>(v >> 32));
    ws::detail::store_be32(b, static_cast<std::uint32_t>(v));
    CHECK(ws::detail::load_be32(b) == static_cast<std::uint32_t>(v));
    ws::detail::store_be16(b, static_cast<std::uint16_t>(v));
    CHECK(ws::detail::load_be16(b) == static_cast<std::uint16_t>(v));
  }
}

// =====================================================================================
// ASCII helpers and errors
// =====================================================================================

TEST_CASE("ascii helpers: iequals, trim, is_token") {
  using namespace ws::detail;
  CHECK(iequals("Upgrade", "uPGRADE"));
  CHECK(iequals("", ""));
  CHECK_FALSE(iequals("Upgrade", "Upgrades"));
  CHECK_FALSE(iequals("a", "b"));
  CHECK_FALSE(iequals("[", "{"));  // 0x5B vs 0x7B differ only in bit 5 but are not letters
  CHECK_FALSE(iequals("@", "`"));
  CHECK(trim(" \t a b \t ") == "a b");
  CHECK(trim("\t\t") == "");
  CHECK(trim("x") == "x");
  CHECK(trim("\r x") == "\r x");  // only SP and HTAB are OWS
  CHECK(is_token("permessage-deflate"));
  CHECK(is_token("!#$%&'*+-.^_`|~09azAZ"));
  CHECK_FALSE(is_token(""));
  CHECK_FALSE(is_token("a b"));
  CHECK_FALSE(is_token("a,b"));
  CHECK_FALSE(is_token("a\"b"));
  CHECK_FALSE(is_token(std::string_view("a\0b", 3)));
  CHECK_FALSE(is_token("\xC3\xA9"));
  CHECK_FALSE(is_token("a:b"));
}

TEST_CASE("ascii helpers: for_each_list_item skips empty elements and trims") {
  std::vector<std::string> items;
  ws::detail::for_each_list_item(" a ,, \tb\t,,c, ", [&](std::string_view i) {
    items.emplace_back(i);
  });
  ENSURE(items.size() == 3);
  CHECK(items[0] == "a");
  CHECK(items[1] == "b");
  CHECK(items[2] == "c");
  items.clear();
  ws::detail::for_each_list_item("", [&](std::string_view i) { items.emplace_back(i); });
  ws::detail::for_each_list_item(" , ,", [&](std::string_view i) { items.emplace_back(i); });
  CHECK(items.empty());
}

TEST_CASE("errors: Error converts to bool and has a message") {
  ws::Error ok;
  CHECK_FALSE(static_cast<bool>(ok));
  CHECK(std::string(ok.message()) == "ok");
  ws::Error e(ws::Errc::bad_url, "nope");
  CHECK(static_cast<bool>(e));
  CHECK(e.code == ws::Errc::bad_url);
  CHECK(std::string(e.message()) == "nope");
}

// =====================================================================================
// SHA-1
// =====================================================================================

TEST_CASE("sha1: RFC 3174 vectors") {
  CHECK(sha1_hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  std::string rep;
  for (int i = 0; i < 10; ++i)
    rep += "0123456701234567012345670123456701234567012345670123456701234567";
  CHECK(sha1_hex(rep) == "dea356a2cddd90c7a7ecedc5ebb563934f460452");
}

TEST_CASE("sha1: one million 'a' fed in uneven pieces") {
  const std::string chunk(1000, 'a');
  ws::Sha1 h;
  std::size_t fed = 0, step = 0;
  const std::size_t sizes[] = {1, 63, 64, 65, 7, 0, 127, 128, 129, 999, 3};
  while (fed < 1000000) {
    std::size_t n = std::min(sizes[step++ % 11], std::size_t{1000000} - fed);
    h.update(chunk.data(), n);
    fed += n;
  }
  CHECK(hex(h.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  // And in one call.
  const std::string million(1000000, 'a');
  CHECK(sha1_hex(million) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("sha1: empty input") {
  CHECK(sha1_hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  ws::Sha1 h;
  CHECK(hex(h.finish()) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  ws::Sha1 h2;
  h2.update("", 0);
  h2.update("x", 0);
  CHECK(hex(h2.finish()) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST_CASE("sha1: padding boundaries (lengths around 56 and 64 mod 64)") {
  // Reference digests of n times 'a', from an independent implementation (sha1sum).
  struct V {
    std::size_t n;
    const char* digest;
  };
  const V vectors[] = {
      {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
      {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
      {57, "f08f24908d682555111be7ff6f004e78283d989a"},
      {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
      {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
      {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
      {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
      {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
      {128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0"},
  };
  for (const V& v : vectors) {
    CAPTURE(v.n);
    CHECK(sha1_hex(std::string(v.n, 'a')) == v.digest);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(static_cast<unsigned char>(i));
  CHECK(sha1_hex(all) == "4916d6bdb7f78e6803698cab32d1586ea457dfc8");
}

TEST_CASE("sha1: incremental update at every split equals one shot") {
  std::string input;
  for (int i = 0; i < 200; ++i) input += static_cast<char>(static_cast<unsigned char>(i * 37 + 11));
  const std::string whole = sha1_hex(input);
  for (std::size_t at = 0; at <= input.size(); ++at) {
    CAPTURE(at);
    ws::Sha1 h;
    h.update(input.data(), at);
    h.update(input.data() + at, input.size() - at);
    CHECK(hex(h.finish()) == whole);
  }
  // Three pieces, all pairs of split points.
  std::size_t three_piece_mismatches = 0;
  for (std::size_t a = 0; a <= input.size(); a += 7) {
    for (std::size_t b = a; b <= input.size(); b += 5) {
      ws::Sha1 h;
      h.update(input.data(), a);
      h.update(input.data() + a, b - a);
      h.update(input.data() + b, input.size() - b);
      if (hex(h.finish()) != whole) ++three_piece_mismatches;
    }
  }
  CHECK(three_piece_mismatches == 0);
  // Byte at a time.
  ws::Sha1 h;
  for (char c : input) h.update(&c, 1);
  CHECK(hex(h.finish()) == whole);
  // The digest depends on the content: flipping one bit changes it.
  input[100] = static_cast<char>(input[100] ^ 1);
  CHECK(sha1_hex(input) != whole);
}

// =====================================================================================
// Base64
// =====================================================================================

TEST_CASE("base64: RFC 4648 §10 vectors encode") {
  auto enc = [](const std::string& s) { return ws::base64_encode(s.data(), s.size()); };
  CHECK(enc("") == "");
  CHECK(enc("f") == "Zg==");
  CHECK(enc("fo") == "Zm8=");
  CHECK(enc("foo") == "Zm9v");
  CHECK(enc("foob") == "Zm9vYg==");
  CHECK(enc("fooba") == "Zm9vYmE=");
  CHECK(enc("foobar") == "Zm9vYmFy");
  CHECK(enc(bytes({0xFB, 0xFF, 0xBF})) == "+/+/");
  CHECK(enc(bytes({0x00, 0x00, 0x00})) == "AAAA");
}

TEST_CASE("base64: RFC 4648 §10 vectors decode") {
  auto dec = [](std::string_view in, std::string& out) { return ws::base64_decode(in, out); };
  std::string out = "garbage";
  CHECK(dec("", out));
  CHECK(out == "");
  CHECK(dec("Zg==", out));
  CHECK(out == "f");
  CHECK(dec("Zm8=", out));
  CHECK(out == "fo");
  CHECK(dec("Zm9v", out));
  CHECK(out == "foo");
  CHECK(dec("Zm9vYg==", out));
  CHECK(out == "foob");
  CHECK(dec("Zm9vYmE=", out));
  CHECK(out == "fooba");
  CHECK(dec("Zm9vYmFy", out));
  CHECK(out == "foobar");
  CHECK(dec("+/+/", out));
  CHECK(out == bytes({0xFB, 0xFF, 0xBF}));
}

TEST_CASE("base64: decode rejects a length that is not a multiple of 4") {
  std::string out;
  for (const char* s : {"Z", "Zg", "Zg=", "Zm9", "Zm9vY", "Zm9vYg=", "Zm9vYmFy=", "Zg==="}) {
    CAPTURE(s);
    CHECK_FALSE(ws::base64_decode(s, out));
  }
}

TEST_CASE("base64: decode rejects characters outside the alphabet") {
  std::string out;
  for (const char* s : {"Zm9*", "Zm 9", "Zm9-", "Zm9_", "Zm\n9", "Zm.v", "\xC3\xA9Zg"}) {
    CAPTURE(s);
    CHECK_FALSE(ws::base64_decode(s, out));
  }
  CHECK_FALSE(ws::base64_decode(std::string_view("Zm9\0", 4), out));
}

TEST_CASE("base64: decode rejects padding anywhere but the end") {
  std::string out;
  for (const char* s : {"Zg==Zm9v", "Zm8=Zm9v", "====", "Z===", "=Zm9", "Zm=v", "Zg=A",
                        "Zm9v====", "Zm9vZ===", "Zg==Zg=="}) {
    CAPTURE(s);
    CHECK_FALSE(ws::base64_decode(s, out));
  }
}

TEST_CASE("base64: decode rejects non-zero pad bits") {
  std::string out;
  CHECK(ws::base64_decode("Zg==", out));
  CHECK_FALSE(ws::base64_decode("Zh==", out));
  CHECK_FALSE(ws::base64_decode("Zv==", out));
  CHECK(ws::base64_decode("Zm8=", out));
  CHECK_FALSE(ws::base64_decode("Zm9=", out));
  CHECK_FALSE(ws::base64_decode("Zm/=", out));
  // 16-byte nonce keys end in "==": the last char before the padding must be A, Q, g or w.
  CHECK(ws::base64_decode("dGhlIHNhbXBsZSBub25jZQ==", out));
  CHECK(out == "the sample nonce");
  CHECK_FALSE(ws::base64_decode("dGhlIHNhbXBsZSBub25jZR==", out));
}

TEST_CASE("base64: round trip of random byte strings of length 0..64") {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> byte(0, 255);
  for (std::size_t len = 0; len <= 64; ++len) {
    for (int rep = 0; rep < 20; ++rep) {
      std::string raw;
      for (std::size_t i = 0; i < len; ++i) raw += static_cast<char>(byte(rng));
      const std::string enc = ws::base64_encode(raw.data(), raw.size());
      CAPTURE(len);
      ENSURE(enc.size() == (len + 2) / 3 * 4);
      std::string back;
      const bool decoded = ws::base64_decode(enc, back);
      ENSURE(decoded);
      ENSURE(back == raw);
    }
  }
}

// =====================================================================================
// accept_key
// =====================================================================================

TEST_CASE("accept_key: RFC 6455 §1.3 example") {
  CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZA==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(ws::accept_key("").size() == 28);
}

// =====================================================================================
// UTF-8
// =====================================================================================

TEST_CASE("utf8: valid ASCII, 2-, 3- and 4-byte sequences") {
  CHECK(ws::is_valid_utf8(""));
  CHECK(ws::is_valid_utf8("hello, world"));
  CHECK(ws::is_valid_utf8(std::string_view("a\0b", 3)));
  CHECK(ws::is_valid_utf8("\xC3\xA9t\xC3\xA9"));          // été
  CHECK(ws::is_valid_utf8("\xE2\x82\xAC"));               // €
  CHECK(ws::is_valid_utf8("\xF0\x9F\x98\x80"));           // 😀
  CHECK(ws::is_valid_utf8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));  // κόσμε
}

TEST_CASE("utf8: every boundary code point is valid") {
  const std::uint32_t points[] = {0x0,    0x7F,   0x80,    0x7FF,   0x800,
                                  0xFFFF, 0x10000, 0x10FFFF, 0xD7FF, 0xE000,
                                  0xFFFD, 0xFFFE, 0x3FFFF, 0x40000, 0xFFFFF, 0x100000};
  for (std::uint32_t cp : points) {
    std::string s;
    encode_utf8(cp, s);
    CAPTURE(cp);
    CHECK(ws::is_valid_utf8(s));
  }
  CHECK(ws::is_valid_utf8(bytes({0x7F})));
  CHECK(ws::is_valid_utf8(bytes({0xC2, 0x80})));
  CHECK(ws::is_valid_utf8(bytes({0xDF, 0xBF})));
  CHECK(ws::is_valid_utf8(bytes({0xE0, 0xA0, 0x80})));
  CHECK(ws::is_valid_utf8(bytes({0xEF, 0xBF, 0xBF})));
  CHECK(ws::is_valid_utf8(bytes({0xF0, 0x90, 0x80, 0x80})));
  CHECK(ws::is_valid_utf8(bytes({0xF4, 0x8F, 0xBF, 0xBF})));
  CHECK(ws::is_valid_utf8(bytes({0xED, 0x9F, 0xBF})));
  CHECK(ws::is_valid_utf8(bytes({0xEE, 0x80, 0x80})));
}

namespace {
const std::vector<std::string>& valid_samples() {
  static const std::vector<std::string> v = {
      bytes({0x41}),
      bytes({0x7F}),
      bytes({0x00}),
      bytes({0xC2, 0x80}),
      bytes({0xC3, 0xA9}),
      bytes({0xDF, 0xBF}),
      bytes({0xE0, 0xA0, 0x80}),
      bytes({0xE2, 0x82, 0xAC}),
      bytes({0xED, 0x9F, 0xBF}),
      bytes({0xEE, 0x80, 0x80}),
      bytes({0xEF, 0xBF, 0xBF}),
      bytes({0xF0, 0x90, 0x80, 0x80}),
      bytes({0xF0, 0x9F, 0x98, 0x80}),
      bytes({0xF3, 0xBF, 0xBF, 0xBF}),
      bytes({0xF4, 0x8F, 0xBF, 0xBF}),
  };
  return v;
}

// Invalid wherever they appear (also followed by more text).
const std::vector<std::string>& invalid_samples() {
  static const std::vector<std::string> v = {
      bytes({0xC0, 0x80}),                          // overlong U+0000
      bytes({0xC1, 0xBF}),                          // overlong U+007F
      bytes({0xE0, 0x80, 0x80}),                    // overlong
      bytes({0xE0, 0x9F, 0xBF}),                    // overlong U+07FF
      bytes({0xF0, 0x80, 0x80, 0x80}),              // overlong
      bytes({0xF0, 0x8F, 0xBF, 0xBF}),              // overlong U+FFFF
      bytes({0xED, 0xA0, 0x80}),                    // U+D800
      bytes({0xED, 0xBF, 0xBF}),                    // U+DFFF
      bytes({0xED, 0xB0, 0x80}),                    // U+DC00
      bytes({0xF4, 0x90, 0x80, 0x80}),              // U+110000
      bytes({0xF5, 0x80, 0x80, 0x80}),              // > U+10FFFF
      bytes({0xF7, 0xBF, 0xBF, 0xBF}),              // U+1FFFFF
      bytes({0xF8, 0x88, 0x80, 0x80, 0x80}),        // 5-byte form
      bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}),  // 6-byte form
      bytes({0xFE}),
      bytes({0xFF}),
      bytes({0x80}),                    // lone continuation
      bytes({0xBF}),                    // lone continuation
      bytes({0x80, 0x80}),              // two lone continuations
      bytes({0xC3, 0xA9, 0xA9}),        // one continuation too many
      bytes({0xC3, 0x41}),              // lead then ASCII
      bytes({0xE2, 0x82, 0x41}),        // cut 3-byte then ASCII
      bytes({0xF0, 0x9F, 0x98, 0x41}),  // cut 4-byte then ASCII
      bytes({0xE2, 0xC3, 0xA9}),        // cut 3-byte then a new lead
      bytes({0xF0, 0x9F, 0x98}) + bytes({0xF0, 0x9F, 0x98, 0x80}),
  };
  return v;
}

// Well-formed so far but cut short: valid prefixes that leave complete() false.
const std::vector<std::string>& truncated_samples() {
  static const std::vector<std::string> v = {
      bytes({0xC3}),
      bytes({0xE2}),
      bytes({0xE2, 0x82}),
      bytes({0xE0, 0xA0}),
      bytes({0xED, 0x9F}),
      bytes({0xF0}),
      bytes({0xF0, 0x9F}),
      bytes({0xF0, 0x9F, 0x98}),
      bytes({0xF4, 0x8F, 0xBF}),
  };
  return v;
}
}  // namespace

TEST_CASE("utf8: overlongs, surrogates, > U+10FFFF, 5/6-byte forms, FE/FF, lone continuations") {
  for (const std::string& s : invalid_samples()) {
    CAPTURE(to_hex(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
    CHECK_FALSE(ws::is_valid_utf8(s));
    CHECK_FALSE(ws::is_valid_utf8("abc" + s));
    CHECK_FALSE(ws::is_valid_utf8("abc" + s + "def"));
    ws::Utf8Validator v;
    CHECK_FALSE(v.feed(s.data(), s.size()));
    CHECK_FALSE(v.complete());
  }
}

TEST_CASE("utf8: truncated sequences at the end are incomplete, not failed") {
  for (const std::string& s : truncated_samples()) {
    CAPTURE(to_hex(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
    CHECK_FALSE(ws::is_valid_utf8(s));
    CHECK_FALSE(ws::is_valid_utf8("text " + s));
    ws::Utf8Validator v;
    CHECK(v.feed(s.data(), s.size()));  // could still be completed
    CHECK_FALSE(v.complete());
  }
  // Completing a cut sequence in a later feed() makes it whole.
  ws::Utf8Validator v;
  CHECK(v.feed("\xF0\x9F", 2));
  CHECK_FALSE(v.complete());
  CHECK(v.feed("\x98", 1));
  CHECK_FALSE(v.complete());
  CHECK(v.feed("\x80", 1));
  CHECK(v.complete());
  // And a wrong continuation in a later feed() fails it.
  ws::Utf8Validator w;
  CHECK(w.feed("\xE0", 1));
  CHECK_FALSE(w.feed("\x9F", 1));  // E0 needs A0..BF
}

TEST_CASE("utf8: a bad byte after an ASCII run is found at every offset (16-byte fast path)") {
  const int bad_bytes[] = {0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xF8, 0xFE, 0xFF};
  for (int bad : bad_bytes) {
    for (std::size_t k = 0; k <= 40; ++k) {
      std::string s(48, 'x');
      s[k] = static_cast<char>(static_cast<unsigned char>(bad));
      CAPTURE(bad);
      CAPTURE(k);
      CHECK_FALSE(ws::is_valid_utf8(s));
      // Fail-fast at exactly that byte: everything before it is fine.
      ws::Utf8Validator v;
      CHECK(v.feed(s.data(), k));
      CHECK_FALSE(v.feed(s.data() + k, 1));
    }
  }
}

TEST_CASE("utf8: a lead byte followed by ASCII inside an ASCII run is found at every offset") {
  for (int lead : {0xC3, 0xE2, 0xF0}) {
    for (std::size_t k = 0; k <= 40; ++k) {
      std::string s(48, 'y');
      s[k] = static_cast<char>(static_cast<unsigned char>(lead));
      CAPTURE(lead);
      CAPTURE(k);
      CHECK_FALSE(ws::is_valid_utf8(s));
    }
  }
  // A cut sequence as the very last byte after a long ASCII run.
  for (std::size_t n = 0; n <= 40; ++n) {
    std::string s(n, 'z');
    s += '\xE2';
    CAPTURE(n);
    CHECK_FALSE(ws::is_valid_utf8(s));
    ws::Utf8Validator v;
    CHECK(v.feed(s.data(), s.size()));
    CHECK_FALSE(v.complete());
  }
}

TEST_CASE("utf8: valid multi-byte sequences inside an ASCII run at every offset") {
  for (const std::string& seq : valid_samples()) {
    for (std::size_t k = 0; k <= 40; ++k) {
      std::string s = std::string(k, 'q') + seq + std::string(40 - k, 'r');
      CAPTURE(k);
      CHECK(ws::is_valid_utf8(s));
    }
  }
  for (const std::string& seq : invalid_samples()) {
    for (std::size_t k = 0; k <= 40; ++k) {
      std::string s = std::string(k, 'q') + seq + std::string(40 - k, 'r');
      CAPTURE(k);
      CHECK_FALSE(ws::is_valid_utf8(s));
    }
  }
}

TEST_CASE("utf8: every split into two feed() calls gives the one-shot verdict") {
  const std::string prefix = "The quick brown fox jumps ";  // > 16 bytes: fast path used
  const std::string suffix = " over the lazy dog";
  auto check_all_splits = [&](const std::string& seq, bool expected) {
    const std::string s = prefix + seq + suffix;
    ENSURE(ws::is_valid_utf8(s) == expected);
    for (std::size_t at = 0; at <= s.size(); ++at) {
      CAPTURE(at);
      CHECK(split_verdict(s, at) == verdict(expected));
    }
    // Also with the sequence at the very start and very end.
    for (const std::string& t : {seq + suffix, prefix + seq, seq}) {
      ENSURE(ws::is_valid_utf8(t) == expected);
      for (std::size_t at = 0; at <= t.size(); ++at) CHECK(split_verdict(t, at) == verdict(expected));
    }
  };
  for (const std::string& seq : valid_samples()) check_all_splits(seq, true);
  for (const std::string& seq : invalid_samples()) check_all_splits(seq, false);
  for (const std::string& seq : truncated_samples()) {
    const std::string s = prefix + seq;
    for (std::size_t at = 0; at <= s.size(); ++at) {
      ws::Utf8Validator v;
      CHECK(v.feed(s.data(), at));
      CHECK(v.feed(s.data() + at, s.size() - at));
      CHECK_FALSE(v.complete());
    }
  }
}

TEST_CASE("utf8: one byte at a time gives the one-shot verdict") {
  const std::string prefix = "0123456789abcdef0123";
  for (const std::string& seq : valid_samples()) {
    CHECK(bytewise_verdict(prefix + seq + prefix) == 1);
    CHECK(bytewise_verdict(seq) == 1);
  }
  for (const std::string& seq : invalid_samples()) {
    CHECK(bytewise_verdict(prefix + seq + prefix) == 0);
    CHECK(bytewise_verdict(seq) == 0);
  }
  for (const std::string& seq : truncated_samples()) CHECK(bytewise_verdict(prefix + seq) == 0);
}

TEST_CASE("utf8: fail-fast, feed() keeps returning false after a failure") {
  ws::Utf8Validator v;
  CHECK(v.feed("ok ", 3));
  CHECK_FALSE(v.feed("\xFF", 1));
  CHECK_FALSE(v.feed("plain ascii", 11));
  CHECK_FALSE(v.feed("\xC3\xA9", 2));
  CHECK_FALSE(v.feed("", 0));
  CHECK_FALSE(v.complete());
  // A failure in the middle of a sequence also sticks.
  ws::Utf8Validator w;
  CHECK(w.feed("\xED", 1));
  CHECK_FALSE(w.feed("\xA0", 1));  // would be a surrogate
  CHECK_FALSE(w.feed("\x80", 1));
  CHECK_FALSE(w.feed("abcdefghijklmnopqrstuvwxyz0123456789", 36));
  CHECK_FALSE(w.complete());
  // reset() starts over.
  w.reset();
  CHECK(w.complete());
  CHECK(w.feed("abc", 3));
  CHECK(w.complete());
  ws::Utf8Validator x;
  CHECK(x.feed("\xE2\x82", 2));
  x.reset();
  CHECK(x.complete());
  CHECK(x.feed("\x41", 1));
  CHECK(x.complete());
}

TEST_CASE("utf8: exhaustive 1- to 4-byte strings over interesting bytes match a reference") {
  const int interesting[] = {0x00, 0x01, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                             0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
                             0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
  const std::size_t n = sizeof interesting / sizeof interesting[0];
  std::size_t mismatches = 0, valid_count = 0;
  std::string first_mismatch;
  auto check = [&](const std::string& s) {
    const Ref ref = ref_classify(s);
    const bool one_shot = ws::is_valid_utf8(s);
    ws::Utf8Validator v;
    const bool fed = v.feed(s.data(), s.size());
    const bool ok = one_shot == (ref == Ref::valid) && fed == (ref != Ref::invalid) &&
                    (!fed || v.complete() == (ref == Ref::valid));
    if (ref == Ref::valid) ++valid_count;
    if (!ok && mismatches++ == 0)
      first_mismatch = to_hex(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  std::string s;
  for (std::size_t a = 0; a < n; ++a) {
    s.assign(1, static_cast<char>(interesting[a]));
    check(s);
    for (std::size_t b = 0; b < n; ++b) {
      s.resize(2);
      s[1] = static_cast<char>(interesting[b]);
      check(s);
      for (std::size_t c = 0; c < n; ++c) {
        s.resize(3);
        s[2] = static_cast<char>(interesting[c]);
        check(s);
        for (std::size_t d = 0; d < n; ++d) {
          s.resize(4);
          s[3] = static_cast<char>(interesting[d]);
          check(s);
        }
      }
    }
  }
  CAPTURE(first_mismatch);
  CHECK(mismatches == 0);
  CHECK(valid_count > 1000);  // the set does produce valid multi-byte strings
}

// The block path (x86: 16 bytes at a time, each byte against the 3 before it) runs on
// non-ASCII text of 64 bytes or more: the same strings inside such text, at every position
// within a 16-byte block, in the middle and as the very end (where the last block hands a
// sequence it cannot finish back to the byte-at-a-time path).
TEST_CASE("utf8: exhaustive short strings inside long mixed text match the reference at every offset") {
  const int interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                             0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFF};
  const std::size_t n = sizeof interesting / sizeof interesting[0];
  // Non-ASCII filler of any length: "\xC3\xA9" pairs, and one 'a' when the length is odd.
  auto filler = [](std::size_t len) {
    std::string f(len % 2, 'a');
    for (std::size_t i = 0; i < len / 2; ++i) f += "\xC3\xA9";
    return f;
  };
  std::size_t checked = 0, mismatches = 0, valid_count = 0;
  std::string first_mismatch;
  auto check = [&](const std::string& s) {
    const bool ref = ref_valid(s);
    valid_count += ref;
    ++checked;
    if (ws::is_valid_utf8(s) != ref && mismatches++ == 0)
      first_mismatch = to_hex(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  const std::string head = filler(16), tail = filler(40);
  std::string s;
  for (std::size_t len = 1; len <= 4; ++len) {
    std::size_t total = 1;
    for (std::size_t k = 0; k < len; ++k) total *= n;
    for (std::size_t code = 0; code < total; ++code) {
      s.clear();
      for (std::size_t k = 0, c = code; k < len; ++k, c /= n) s += static_cast<char>(interesting[c % n]);
      // Every offset for the shorter strings; the offsets that straddle a block for 4 bytes.
      for (std::size_t off = 0; off < 16; ++off) {
        if (len == 4 && off != 0 && off < 12) continue;
        check(head + filler(32 + off) + s + tail);  // in the middle
        check(head + filler(48 + off) + s);         // at the very end
      }
    }
  }
  CAPTURE(first_mismatch);
  CHECK(mismatches == 0);
  CHECK(checked > 2000000);
  CHECK(valid_count > 20000);
}

TEST_CASE("utf8: the reference decoder agrees with known verdicts") {
  // Guards the reference itself, so the comparisons above mean something.
  for (const std::string& s : valid_samples()) CHECK(ref_classify(s) == Ref::valid);
  for (const std::string& s : invalid_samples()) CHECK(ref_classify(s) == Ref::invalid);
  for (const std::string& s : truncated_samples()) CHECK(ref_classify(s) == Ref::incomplete);
}

TEST_CASE("utf8: random strings (fixed seed) match the reference, also split") {
  std::mt19937 rng(777);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<std::uint32_t> cp_dist(0, 0x10FFFF);
  std::size_t mismatches = 0, valid_count = 0;
  for (int iter = 0; iter < 40000; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 48);
    for (int i = 0; i < len; ++i) {
      const int k = kind(rng);
      if (k < 4) {
        s += static_cast<char>('a' + static_cast<int>(rng() % 26));
      } else if (k < 8) {
        std::uint32_t cp = cp_dist(rng);
        if (cp >= 0xD800 && cp <= 0xDFFF && (rng() % 4) != 0) cp -= 0x800;
        encode_utf8(cp, s);
      } else {
        s += static_cast<char>(byte(rng));
      }
    }
    const bool ref = ref_valid(s);
    if (ref) ++valid_count;
    if (ws::is_valid_utf8(s) != ref) ++mismatches;
    const std::size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
    if (split_verdict(s, at) != verdict(ref)) ++mismatches;
  }
  CHECK(mismatches == 0);
  CHECK(valid_count > 2000);
  CHECK(valid_count < 40000);
}

TEST_CASE("utf8: every Unicode scalar value validates (one buffer, and split feeding)") {
  std::string all;
  all.reserve(4400000);
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp == 0xD800) cp = 0xE000;
    encode_utf8(cp, all);
  }
  CHECK(all.size() == 0x80 * 1 + (0x800 - 0x80) * 2 + (0x10000 - 0x800 - 0x800) * 3 +
                          (0x110000 - 0x10000) * 4);
  CHECK(ws::is_valid_utf8(all));
  // Fed in pieces of varying length, so splits fall at every position within sequences.
  ws::Utf8Validator v;
  bool ok = true;
  std::size_t pos = 0, step = 0;
  const std::size_t sizes[] = {1, 2, 3, 5, 7, 11, 13, 16, 17, 31, 64, 1000};
  while (pos < all.size() && ok) {
    const std::size_t n = std::min(sizes[step++ % 12], all.size() - pos);
    ok = v.feed(all.data() + pos, n);
    pos += n;
  }
  CHECK(ok);
  CHECK(pos == all.size());
  CHECK(v.complete());
  // Cutting the last sequence short leaves it incomplete.
  CHECK_FALSE(ws::is_valid_utf8(std::string_view(all.data(), all.size() - 1)));
}

TEST_CASE("utf8: every surrogate U+D800..U+DFFF is rejected") {
  std::size_t accepted = 0;
  for (std::uint32_t cp = 0xD800; cp <= 0xDFFF; ++cp) {
    std::string s = "x";
    encode_utf8(cp, s);
    if (ws::is_valid_utf8(s)) ++accepted;
  }
  CHECK(accepted == 0);
}

TEST_CASE("utf8: every overlong 2-, 3- and 4-byte form is rejected") {
  std::size_t accepted = 0;
  for (std::uint32_t cp = 0; cp < 0x80; ++cp)  // 2-byte overlongs
    if (ws::is_valid_utf8(bytes({static_cast<int>(0xC0 | (cp >> 6)),
                                 static_cast<int>(0x80 | (cp & 0x3F))})))
      ++accepted;
  for (std::uint32_t cp = 0; cp < 0x800; ++cp)  // 3-byte overlongs
    if (ws::is_valid_utf8(bytes({static_cast<int>(0xE0 | (cp >> 12)),
                                 static_cast<int>(0x80 | ((cp >> 6) & 0x3F)),
                                 static_cast<int>(0x80 | (cp & 0x3F))})))
      ++accepted;
  for (std::uint32_t cp = 0; cp < 0x10000; cp += 7)  // 4-byte overlongs (sampled)
    if (ws::is_valid_utf8(bytes({static_cast<int>(0xF0 | (cp >> 18)),
                                 static_cast<int>(0x80 | ((cp >> 12) & 0x3F)),
                                 static_cast<int>(0x80 | ((cp >> 6) & 0x3F)),
                                 static_cast<int>(0x80 | (cp & 0x3F))})))
      ++accepted;
  CHECK(accepted == 0);
}

// =====================================================================================
// random_bytes
// =====================================================================================

TEST_CASE("random_bytes: returns true and two 32-byte draws differ") {
  std::array<std::uint8_t, 32> a{}, b{};
  CHECK(ws::random_bytes(a.data(), a.size()));
  CHECK(ws::random_bytes(b.data(), b.size()));
  CHECK(a != b);
  CHECK(a != std::array<std::uint8_t, 32>{});
  CHECK(ws::random_bytes(a.data(), 0));
}

TEST_CASE("random_bytes: 64 KiB draw looks uniform (loose bounds)") {
  std::vector<std::uint8_t> buf(65536, 0);
  const bool filled = ws::random_bytes(buf.data(), buf.size());
  ENSURE(filled);
  std::array<std::size_t, 256> counts{};
  std::size_t zeros = 0;
  for (std::uint8_t b : buf) {
    ++counts[b];
    if (b == 0) ++zeros;
  }
  CHECK(zeros < buf.size());
  // Expected 256 each (sd 16); these bounds are about 7 sd away.
  const auto [mn, mx] = std::minmax_element(counts.begin(), counts.end());
  CHECK(*mn > 140);
  CHECK(*mx < 380);
  // The last bytes are filled too (a short read would leave zeros at the end).
  std::size_t tail_zeros = 0;
  for (std::size_t i = buf.size() - 64; i < buf.size(); ++i)
    if (buf[i] == 0) ++tail_zeros;
  CHECK(tail_zeros < 16);
}

// =====================================================================================
// Undefined behaviour on empty input (kept last: under UBSAN_OPTIONS=halt_on_error=1 a
// report ends the program)
// =====================================================================================

TEST_CASE("sha1: update() with null data and size 0 is a no-op, free of UB") {
  // An empty std::string_view has data() == nullptr; hashing it after some bytes are
  // buffered must not pass the null pointer to memcpy (UB even for 0 bytes).
  const int before = g_ubsan_reports;
  ws::Sha1 h;
  h.update("abc", 3);
  const std::string_view empty;
  h.update(empty.data(), empty.size());
  CHECK(hex(h.finish()) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(g_ubsan_reports == before);
  // The same at the start and after a whole block.
  const int before2 = g_ubsan_reports;
  ws::Sha1 g;
  g.update(empty.data(), empty.size());
  const std::string block(64, 'a');
  g.update(block.data(), block.size());
  g.update(empty.data(), empty.size());
  CHECK(hex(g.finish()) == "0098ba824b5c16427bd7a1122a5a442a25ec644d");
  CHECK(g_ubsan_reports == before2);
}
