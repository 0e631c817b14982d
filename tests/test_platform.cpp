// Portability tests: the code whose result depends on the machine, checked against fixed byte
// vectors so that a wrong answer cannot hide behind a round trip through the same code.
//
//   - byte order: 16/32/64-bit lengths are big-endian on the wire whatever the host order;
//   - masking, which XORs eight bytes at a time through a uint64_t: equal to a byte-at-a-time
//     reference at every length, key offset and buffer alignment;
//   - word size: a 64-bit frame length that does not fit the platform's size_t (32-bit ARM,
//     32-bit Windows) is rejected with close 1009, never truncated into a small length;
//   - SHA-1 and the UTF-8 fast path (32/64-bit words) on this byte order.
//
// `make test-arm` (qemu-arm, 32-bit size_t), `make test-be` (qemu-s390x, big-endian) and
// `make test-windows` (Wine) run it where these differ from x86_64 Linux. The runs set
// WS_EXPECT_SIZE_T_BITS and WS_EXPECT_BYTE_ORDER, so the report test fails if a binary did
// not really run on the machine it was built for.
#include "../websocket.hpp"  // first and alone: the header needs nothing included before it

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using u8 = std::uint8_t;

std::string bytes(std::initializer_list<unsigned> v) {
  std::string s;
  for (unsigned b : v) s += static_cast<char>(static_cast<u8>(b));
  return s;
}

std::string hex(const void* data, std::size_t n) {
  static const char* d = "0123456789abcdef";
  const auto* p = static_cast<const u8*>(data);
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += d[p[i] >> 4];
    out += d[p[i] & 15];
  }
  return out;
}
std::string hex(const std::string& s) { return hex(s.data(), s.size()); }

#if defined(WEBSOCKET_USE_BLOCKING)
constexpr const char* kDriver = "blocking";
#else
constexpr const char* kDriver = "poll";
#endif

bool host_is_big_endian() {
  const std::uint32_t one = 1;
  u8 first;
  std::memcpy(&first, &one, 1);
  return first == 0;
}

const char* os_name() {
#if defined(_WIN32)
  return "windows";
#elif defined(__linux__)
  return "linux";
#elif defined(__APPLE__)
  return "macos";
#else
  return "other";
#endif
}

// A frame header as the peer sends it: binary, FIN, the given 64-bit length in the 127 form,
// masked (the peer is a client) with a fixed key, or unmasked.
std::string header64(std::uint64_t length, bool masked) {
  std::string h = bytes({0x82, masked ? 0xFFu : 0x7Fu});
  for (int shift = 56; shift >= 0; shift -= 8) h += static_cast<char>(static_cast<u8>(length >> shift));
  if (masked) h += bytes({0x37, 0xFA, 0x21, 0x3D});
  return h;
}

struct Outcome {
  std::vector<ws::EventType> events;
  std::uint16_t close_code = 0;
  std::size_t data_bytes = 0;  // bytes delivered in text/binary events
  ws::Connection::State state = ws::Connection::State::handshake;
  ws::Errc error = ws::Errc::ok;
  std::string out;  // what the connection wrote (its close frame)
};

// Feeds `input` to a fresh open Connection, in chunks of `chunk` bytes (0: whole).
Outcome feed(ws::Role role, const ws::Limits& limits, std::string input, std::size_t chunk = 0) {
  ws::ConnectionOptions opt;
  opt.limits = limits;
  ws::Connection c(role, opt);
  c.assume_open();
  Outcome o;
  auto on_event = [&](const ws::Event& e) {
    o.events.push_back(e.type);
    if (e.type == ws::EventType::close) o.close_code = e.code;
    if (e.type == ws::EventType::text || e.type == ws::EventType::binary) o.data_bytes += e.data.size();
  };
  std::size_t pos = 0;
  while (pos < input.size() && c.state() != ws::Connection::State::closed) {
    std::size_t n = chunk == 0 ? input.size() - pos : std::min(chunk, input.size() - pos);
    c.receive(&input[pos], n, on_event);
    pos += n;
  }
  o.state = c.state();
  o.error = c.error().code;
  o.out = std::string(c.pending_output());
  return o;
}

// The code in the close frame a Connection wrote (unmasked if it is a client's), or 0.
unsigned sent_close_code(const std::string& out) {
  if (out.size() < 4 || static_cast<u8>(out[0]) != 0x88) return 0;
  const bool masked = (static_cast<u8>(out[1]) & 0x80) != 0;
  const std::size_t at = masked ? 6 : 2;
  if (out.size() < at + 2) return 0;
  u8 hi = static_cast<u8>(out[at]), lo = static_cast<u8>(out[at + 1]);
  if (masked) {
    hi = static_cast<u8>(hi ^ static_cast<u8>(out[2]));
    lo = static_cast<u8>(lo ^ static_cast<u8>(out[3]));
  }
  return (unsigned{hi} << 8) | lo;
}

ws::Limits unlimited() {
  ws::Limits l;
  l.max_frame = std::numeric_limits<std::size_t>::max();
  l.max_message = std::numeric_limits<std::size_t>::max();
  return l;
}

}  // namespace

TEST_CASE("platform: report word size, byte order and OS; match what the run expects") {
  const bool big = host_is_big_endian();
  // doctest prints a const char* argument as a pointer: std::string it is.
  const std::string report = std::string("os=") + os_name() + " sizeof(size_t)=" +
                             std::to_string(sizeof(std::size_t)) + " sizeof(void*)=" + std::to_string(sizeof(void*)) +
                             " sizeof(long)=" + std::to_string(sizeof(long)) + " byte order=" +
                             (big ? "big" : "little") + " driver=" + kDriver;
  MESSAGE(report);
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)
  CHECK(big == (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__));
#endif
  if (const char* bits = std::getenv("WS_EXPECT_SIZE_T_BITS"))
    CHECK(std::to_string(sizeof(std::size_t) * 8) == bits);
  if (const char* order = std::getenv("WS_EXPECT_BYTE_ORDER"))
    CHECK(std::string(big ? "big" : "little") == order);
}

TEST_CASE("platform: big-endian load/store, byte for byte, on this host") {
  u8 b[8] = {};
  ws::detail::store_be16(b, 0x1234);
  CHECK(hex(b, 2) == "12 34");
  ws::detail::store_be32(b, 0x01020304u);
  CHECK(hex(b, 4) == "01 02 03 04");
  ws::detail::store_be64(b, 0x0102030405060708ull);
  CHECK(hex(b, 8) == "01 02 03 04 05 06 07 08");
  const u8 v[8] = {0x80, 0x01, 0xFE, 0x7F, 0x00, 0xFF, 0x10, 0x20};
  CHECK(ws::detail::load_be16(v) == 0x8001u);
  CHECK(ws::detail::load_be32(v) == 0x8001FE7Fu);
  CHECK(ws::detail::load_be64(v) == 0x8001FE7F00FF1020ull);
}

TEST_CASE("platform: frame header lengths in all three forms, byte for byte") {
  struct Case {
    std::uint64_t length;
    const char* unmasked;
  };
  const Case cases[] = {
      {0, "82 00"},
      {125, "82 7d"},
      {126, "82 7e 00 7e"},
      {0x1234, "82 7e 12 34"},
      {0xFFFF, "82 7e ff ff"},
      {0x10000, "82 7f 00 00 00 00 00 01 00 00"},
      {0xFFFFFFFFull, "82 7f 00 00 00 00 ff ff ff ff"},
      {0x100000000ull, "82 7f 00 00 00 01 00 00 00 00"},
      {0x0102030405060708ull, "82 7f 01 02 03 04 05 06 07 08"},
      {0x7FFFFFFFFFFFFFFFull, "82 7f 7f ff ff ff ff ff ff ff"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.length);
    ws::FrameHeader h;
    h.opcode = 2;
    h.length = c.length;
    u8 out[ws::kMaxFrameHeader];
    std::size_t n = ws::encode_frame_header(h, out);
    CHECK(hex(out, n) == c.unmasked);

    ws::FrameHeader back;
    CHECK(ws::decode_frame_header(out, n, back) == static_cast<int>(n));
    CHECK(back.length == c.length);
    CHECK(back.opcode == 2);
    CHECK(back.fin);
    CHECK(!back.masked);

    h.masked = true;  // the key follows the length, in memory order
    h.mask = {{0xA1, 0xB2, 0xC3, 0xD4}};
    n = ws::encode_frame_header(h, out);
    CHECK((out[1] & 0x80) != 0);  // the MASK bit
    CHECK(hex(out + n - 4, 4) == "a1 b2 c3 d4");
    CHECK(ws::decode_frame_header(out, n, back) == static_cast<int>(n));
    CHECK(back.masked);
    CHECK(back.length == c.length);
    CHECK(hex(back.mask.data(), 4) == "a1 b2 c3 d4");
  }
  // §5.2: the most significant bit of a 64-bit length MUST be 0.
  const std::string msb = header64(0x8000000000000000ull, false);
  ws::FrameHeader h;
  CHECK(ws::decode_frame_header(reinterpret_cast<const u8*>(msb.data()), msb.size(), h) == -1);
}

TEST_CASE("platform: masking equals a byte-at-a-time XOR at every length, offset and alignment") {
  // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
  u8 hello[5] = {'H', 'e', 'l', 'l', 'o'};
  const u8 key[4] = {0x37, 0xFA, 0x21, 0x3D};
  ws::apply_mask(hello, 5, key);
  CHECK(hex(hello, 5) == "7f 9f 4d 51 58");

  const u8 keys[2][4] = {{0x37, 0xFA, 0x21, 0x3D}, {0x01, 0x80, 0xFF, 0x7E}};
  std::vector<u8> source(200), buf(208), expect(200);
  for (std::size_t i = 0; i < source.size(); ++i) source[i] = static_cast<u8>(i * 131u + 7u);
  int mismatches = 0;
  for (const auto& k : keys)
    for (std::size_t align = 0; align < 8; ++align)
      for (std::size_t offset = 0; offset < 8; ++offset)
        for (std::size_t len = 0; len <= 100; ++len) {
          for (std::size_t i = 0; i < len; ++i) expect[i] = static_cast<u8>(source[i] ^ k[(offset + i) % 4]);
          std::memcpy(buf.data() + align, source.data(), len);
          ws::apply_mask(buf.data() + align, len, k, offset);
          if (std::memcmp(buf.data() + align, expect.data(), len) != 0) ++mismatches;
        }
  CHECK(mismatches == 0);

  // Unmasking in two pieces split anywhere gives the same bytes (the offset carries the key
  // position over), which is how a payload split across reads is unmasked.
  int split_mismatches = 0;
  for (std::size_t cut = 0; cut <= 100; ++cut) {
    std::vector<u8> whole(source.begin(), source.begin() + 100), pieces = whole;
    ws::apply_mask(whole.data(), 100, key);
    ws::apply_mask(pieces.data(), cut, key, 0);
    ws::apply_mask(pieces.data() + cut, 100 - cut, key, cut);
    if (whole != pieces) ++split_mismatches;
  }
  CHECK(split_mismatches == 0);
}

TEST_CASE("platform: a 64-bit length over the limit closes with 1009 before any payload") {
  // Default limits (16 MiB): 4 GiB and beyond is over max_frame, on every platform.
  for (std::uint64_t len : {0x100000000ull, 0x100000005ull, 0x7FFFFFFFFFFFFFFFull}) {
    CAPTURE(len);
    for (ws::Role role : {ws::Role::server, ws::Role::client}) {
      std::string in = header64(len, role == ws::Role::server) + "hello";
      for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
        Outcome o = feed(role, ws::Limits{}, in, chunk);
        CHECK(o.close_code == ws::close_code::message_too_big);
        CHECK(o.error == ws::Errc::message_too_big);
        CHECK(o.data_bytes == 0);
        CHECK(o.state == ws::Connection::State::closed);
        CHECK(sent_close_code(o.out) == ws::close_code::message_too_big);
      }
    }
  }
}

TEST_CASE("platform: a 64-bit length that does not fit size_t is rejected, never truncated") {
  // With the limits at SIZE_MAX nothing but size_t itself bounds a frame. A 32-bit size_t
  // that kept the low 32 bits of 2^32 + 5 would read "hello" as a whole 5-byte message.
  const bool narrow = sizeof(std::size_t) < 8;
  const std::string expect = "sizeof(size_t) = " + std::to_string(sizeof(std::size_t)) +
                             (narrow ? ": lengths >= 4 GiB must close 1009" : ": lengths >= 4 GiB fit, the frame waits for its payload");
  MESSAGE(expect);
  for (std::uint64_t len : {0x100000000ull, 0x100000005ull, 0x7FFFFFFFFFFFFFFFull}) {
    CAPTURE(len);
    for (ws::Role role : {ws::Role::server, ws::Role::client}) {
      std::string in = header64(len, role == ws::Role::server) + "hello";
      for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
        Outcome o = feed(role, unlimited(), in, chunk);
        CHECK(o.data_bytes == 0);  // never a message made of the next 5 bytes
        if (narrow) {
          CHECK(o.close_code == ws::close_code::message_too_big);
          CHECK(o.error == ws::Errc::message_too_big);
          CHECK(o.state == ws::Connection::State::closed);
        } else {
          CHECK(o.events.empty());
          CHECK(o.state == ws::Connection::State::open);
        }
      }
    }
  }
  // 2^32 - 1 fits every size_t: accepted, and the connection waits for the payload.
  Outcome o = feed(ws::Role::client, unlimited(), header64(0xFFFFFFFFull, false) + "hello");
  CHECK(o.events.empty());
  CHECK(o.state == ws::Connection::State::open);
}

TEST_CASE("platform: fragments whose total does not fit size_t close with 1009") {
  // 10 bytes, then a continuation of 2^32 - 5: each frame fits a 32-bit size_t, the message
  // (2^32 + 5 bytes) does not. On a 64-bit size_t it is within SIZE_MAX and waits for data.
  std::string in = bytes({0x02, 0x0A}) + "0123456789";
  in += bytes({0x80, 0x7F});
  for (int shift = 56; shift >= 0; shift -= 8)
    in += static_cast<char>(static_cast<u8>(0xFFFFFFFBull >> shift));
  Outcome o = feed(ws::Role::client, unlimited(), in);
  CHECK(o.data_bytes == 0);
  if (sizeof(std::size_t) < 8) {
    CHECK(o.close_code == ws::close_code::message_too_big);
    CHECK(o.state == ws::Connection::State::closed);
  } else {
    CHECK(o.events.empty());
    CHECK(o.state == ws::Connection::State::open);
  }
}

TEST_CASE("platform: frames we send carry big-endian lengths and a working mask") {
  for (std::size_t size : {std::size_t{5}, std::size_t{300}, std::size_t{70000}}) {
    CAPTURE(size);
    std::string payload(size, 'x');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);

    ws::Connection server(ws::Role::server);
    server.assume_open();
    CHECK(!server.send_binary(payload));
    std::string out(server.pending_output());
    const char* head = size == 5 ? "82 05" : size == 300 ? "82 7e 01 2c" : "82 7f 00 00 00 00 00 01 11 70";
    const std::size_t head_size = size == 5 ? 2 : size == 300 ? 4 : 10;
    CHECK(hex(out.substr(0, head_size)) == head);
    CHECK(out.substr(head_size) == payload);

    ws::Connection client(ws::Role::client);
    client.assume_open();
    CHECK(!client.send_binary(payload));
    out = std::string(client.pending_output());
    CHECK(out.size() == head_size + 4 + size);
    if (out.size() != head_size + 4 + size) continue;  // (no REQUIRE: builds without exceptions)
    CHECK((static_cast<u8>(out[1]) & 0x80) != 0);
    std::string body = out.substr(head_size + 4);
    for (std::size_t i = 0; i < size; ++i)
      body[i] = static_cast<char>(static_cast<u8>(body[i]) ^ static_cast<u8>(out[head_size + i % 4]));
    CHECK(body == payload);
  }
}

TEST_CASE("platform: SHA-1, Base64 and the handshake accept value on this byte order") {
  // FIPS 180-2 appendix A vectors: one block, two blocks, and many.
  auto sha_hex = [](const std::string& s) {
    std::array<u8, 20> d = ws::sha1(s.data(), s.size());
    return hex(d.data(), d.size());
  };
  CHECK(sha_hex("abc") == "a9 99 3e 36 47 06 81 6a ba 3e 25 71 78 50 c2 6c 9c d0 d8 9d");
  CHECK(sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "84 98 3e 44 1c 3b d2 6e ba ae 4a a1 f9 51 29 e5 e5 46 70 f1");
  CHECK(sha_hex(std::string(1000000, 'a')) == "34 aa 97 3c d4 c4 da a4 f6 1e eb 2b db ad 27 31 65 34 01 6f");
  // RFC 6455 §1.3.
  CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("platform: the UTF-8 fast path sees a non-ASCII byte at every position of a word") {
  // The validator checks 16 ASCII bytes at a time through two uint64_t: a high bit anywhere
  // in them must be seen, whatever the byte order.
  for (std::size_t len = 16; len <= 40; ++len)
    for (std::size_t pos = 0; pos < len; ++pos) {
      std::string s(len, 'a');
      s[pos] = static_cast<char>(0x80);  // a lone continuation byte: invalid
      if (ws::is_valid_utf8(s)) FAIL_CHECK("accepted 0x80 at ", pos, " of ", len);
      s[pos] = static_cast<char>(0xC3);  // é = C3 A9, valid only when the A9 fits
      if (pos + 1 < len) {
        s[pos + 1] = static_cast<char>(0xA9);
        if (!ws::is_valid_utf8(s)) FAIL_CHECK("rejected C3 A9 at ", pos, " of ", len);
      }
    }
}
