// Tests for websocket.hpp §2 (Frame codec): encode_frame_header, decode_frame_header,
// apply_mask, is_control, is_known_opcode, against RFC 6455 §5.2 and §5.3.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#if !defined(__cpp_exceptions) && !defined(__EXCEPTIONS)  // -fno-exceptions: see TH_REQUIRE
#define DOCTEST_CONFIG_NO_EXCEPTIONS_BUT_WITH_ALL_ASSERTS
#endif
#include <doctest/doctest.h>

#include "../websocket.hpp"
#include "helpers.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using th::u8;

namespace {

std::string encode(const ws::FrameHeader& h) {
  u8 buf[ws::kMaxFrameHeader + 8];
  std::memset(buf, 0xEE, sizeof buf);
  std::size_t n = ws::encode_frame_header(h, buf);
  // nothing is written past the returned size
  bool untouched = true;
  for (std::size_t i = n; i < sizeof buf; ++i) untouched = untouched && buf[i] == 0xEE;
  if (!untouched) CHECK_MESSAGE(untouched, "encode_frame_header wrote past the size it returned");
  return std::string(reinterpret_cast<const char*>(buf), n);
}

int decode(const std::string& s, ws::FrameHeader& h) {
  return ws::decode_frame_header(reinterpret_cast<const u8*>(s.data()), s.size(), h);
}

ws::FrameHeader header(std::uint64_t length, bool masked = false, u8 opcode = 0x2, bool fin = true,
                       u8 rsv = 0) {
  ws::FrameHeader h;
  h.fin = fin;
  h.rsv = rsv;
  h.opcode = opcode;
  h.masked = masked;
  h.mask = {{0xA1, 0x02, 0xF3, 0x7C}};
  h.length = length;
  return h;
}

// The length field bytes (byte 1 without the mask bit, plus the extended length) that RFC
// 6455 §5.2 prescribes, written out by hand.
struct LengthCase {
  std::uint64_t length;
  std::string field;
};

const std::vector<LengthCase>& length_cases() {
  static const std::vector<LengthCase> cases = {
      {0, th::bytes({0x00})},
      {1, th::bytes({0x01})},
      {125, th::bytes({0x7D})},
      {126, th::bytes({0x7E, 0x00, 0x7E})},
      {127, th::bytes({0x7E, 0x00, 0x7F})},
      {256, th::bytes({0x7E, 0x01, 0x00})},
      {65535, th::bytes({0x7E, 0xFF, 0xFF})},
      {65536, th::bytes({0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00})},
      {0xFFFFFFFFull, th::bytes({0x7F, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})},
      {0x100000000ull, th::bytes({0x7F, 0, 0, 0, 0x01, 0, 0, 0, 0})},
      {0x0102030405060708ull, th::bytes({0x7F, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08})},
      {0x7FFFFFFFFFFFFFFFull, th::bytes({0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})},
  };
  return cases;
}

void naive_mask(u8* data, std::size_t size, const u8* key, std::size_t offset) {
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<u8>(data[i] ^ key[(offset + i) % 4]);
}

}  // namespace

// ---- encode_frame_header ---------------------------------------------------------------------

TEST_CASE("encode: minimal length forms, unmasked, exact bytes") {
  for (const LengthCase& c : length_cases()) {
    CAPTURE(c.length);
    std::string got = encode(header(c.length, false, 0x2, true));
    std::string want = th::bytes({0x82}) + c.field;
    CHECK(th::hex(got) == th::hex(want));
    CHECK(got.size() == 1 + c.field.size());
  }
}

TEST_CASE("encode: minimal length forms, masked: MASK bit then the 4 key bytes") {
  for (const LengthCase& c : length_cases()) {
    CAPTURE(c.length);
    std::string got = encode(header(c.length, true, 0x1, true));
    std::string field = c.field;
    field[0] = static_cast<char>(th::at(field, 0) | 0x80);
    std::string want = th::bytes({0x81}) + field + th::bytes({0xA1, 0x02, 0xF3, 0x7C});
    CHECK(th::hex(got) == th::hex(want));
  }
}

TEST_CASE("encode: header sizes are 2, 4, 10 (+4 masked), never above kMaxFrameHeader") {
  CHECK(ws::kMaxFrameHeader == 14);
  CHECK(encode(header(125)).size() == 2);
  CHECK(encode(header(126)).size() == 4);
  CHECK(encode(header(65535)).size() == 4);
  CHECK(encode(header(65536)).size() == 10);
  CHECK(encode(header(125, true)).size() == 6);
  CHECK(encode(header(65535, true)).size() == 8);
  CHECK(encode(header(0x7FFFFFFFFFFFFFFFull, true)).size() == 14);
}

TEST_CASE("encode: first byte carries FIN, RSV1-3 and the opcode for every combination") {
  for (int fin = 0; fin < 2; ++fin)
    for (u8 rsv = 0; rsv < 8; ++rsv)
      for (u8 op = 0; op < 16; ++op) {
        CAPTURE(fin);
        CAPTURE(int{rsv});
        CAPTURE(int{op});
        std::string got = encode(header(5, false, op, fin != 0, rsv));
        TH_REQUIRE(got.size() == 2);
        CHECK(th::at(got, 0) == ((fin ? 0x80 : 0) | (rsv << 4) | op));
        CHECK(th::at(got, 1) == 5);
      }
}

TEST_CASE("encode: RSV1 is 0x40, RSV2 0x20, RSV3 0x10 in the first byte") {
  CHECK(th::at(encode(header(0, false, 0x1, false, 4)), 0) == 0x41);
  CHECK(th::at(encode(header(0, false, 0x1, false, 2)), 0) == 0x21);
  CHECK(th::at(encode(header(0, false, 0x1, false, 1)), 0) == 0x11);
  CHECK(th::at(encode(header(0, false, 0x9, true, 0)), 0) == 0x89);
}

TEST_CASE("encode: agrees with the independent test encoder for many lengths") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::uint64_t len;
    switch (i % 4) {
      case 0: len = rng() % 200; break;
      case 1: len = rng() % 70000; break;
      case 2: len = rng() >> 1; break;
      default: len = 0x10000 + rng() % 100; break;
    }
    bool masked = (rng() & 1) != 0;
    CAPTURE(len);
    ws::FrameHeader h = header(len, masked, static_cast<u8>(rng() % 16), (rng() & 1) != 0,
                               static_cast<u8>(rng() % 8));
    th::Spec s;
    s.fin = h.fin;
    s.rsv = h.rsv;
    s.opcode = h.opcode;
    s.mask = masked;
    s.key = h.mask;
    s.override_len = true;
    s.declared = len;
    CHECK(th::hex(encode(h)) == th::hex(th::build(s, "")));
  }
}

// ---- decode_frame_header ---------------------------------------------------------------------

TEST_CASE("decode: round-trips every field and returns the header size") {
  for (const LengthCase& c : length_cases())
    for (int masked = 0; masked < 2; ++masked)
      for (u8 op : {u8{0x0}, u8{0x1}, u8{0x2}, u8{0x8}, u8{0x9}, u8{0xA}, u8{0x3}, u8{0xF}})
        for (u8 rsv : {u8{0}, u8{1}, u8{4}, u8{7}}) {
          CAPTURE(c.length);
          CAPTURE(masked);
          CAPTURE(int{op});
          ws::FrameHeader in = header(c.length, masked != 0, op, (op & 1) == 0, rsv);
          std::string bytes = encode(in);
          ws::FrameHeader out;
          out.fin = !in.fin;  // make sure every field is written
          out.rsv = 0xFF;
          out.opcode = 0xFF;
          out.masked = !in.masked;
          out.length = 12345;
          int n = decode(bytes, out);
          CHECK(n == static_cast<int>(bytes.size()));
          CHECK(out.fin == in.fin);
          CHECK(out.rsv == in.rsv);
          CHECK(out.opcode == in.opcode);
          CHECK(out.masked == in.masked);
          CHECK(out.length == in.length);
          if (in.masked) CHECK(out.mask == in.mask);
        }
}

TEST_CASE("decode: reads hand-written headers") {
  ws::FrameHeader h;
  // RFC 6455 §5.7: a single-frame masked text message "Hello"
  std::string hello = th::bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  CHECK(decode(hello, h) == 6);
  CHECK(h.fin);
  CHECK(h.opcode == 0x1);
  CHECK(h.masked);
  CHECK(h.length == 5);
  CHECK(h.mask == std::array<u8, 4>{{0x37, 0xfa, 0x21, 0x3d}});
  // §5.7: 256 bytes binary message in a single unmasked frame
  CHECK(decode(th::bytes({0x82, 0x7E, 0x01, 0x00}), h) == 4);
  CHECK(h.length == 256);
  CHECK(!h.masked);
  // §5.7: 64 KiB binary message in a single unmasked frame
  CHECK(decode(th::bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0}), h) == 10);
  CHECK(h.length == 65536);
  // a fragment: FIN clear, opcode continuation
  CHECK(decode(th::bytes({0x00, 0x03}), h) == 2);
  CHECK(!h.fin);
  CHECK(h.opcode == 0);
  CHECK(h.length == 3);
}

TEST_CASE("decode: trailing payload bytes are not counted in the header size") {
  ws::FrameHeader h;
  std::string s = encode(header(300, true)) + std::string(300, 'x');
  CHECK(decode(s, h) == 8);
  CHECK(h.length == 300);
}

TEST_CASE("decode: every proper prefix of a header needs more bytes (returns 0)") {
  for (const LengthCase& c : length_cases())
    for (int masked = 0; masked < 2; ++masked) {
      CAPTURE(c.length);
      CAPTURE(masked);
      std::string bytes = encode(header(c.length, masked != 0));
      for (std::size_t k = 0; k < bytes.size(); ++k) {
        CAPTURE(k);
        ws::FrameHeader h;
        CHECK(decode(bytes.substr(0, k), h) == 0);
      }
    }
}

TEST_CASE("decode: one byte at a time, the header completes exactly at its last byte") {
  for (const LengthCase& c : length_cases())
    for (int masked = 0; masked < 2; ++masked) {
      CAPTURE(c.length);
      std::string bytes = encode(header(c.length, masked != 0, 0x1));
      std::string buf;
      int result = 0;
      std::size_t fed = 0;
      ws::FrameHeader h;
      while (result == 0 && fed < bytes.size()) {
        buf += bytes[fed++];
        result = decode(buf, h);
      }
      CHECK(result == static_cast<int>(bytes.size()));
      CHECK(fed == bytes.size());
      CHECK(h.length == c.length);
      CHECK(h.masked == (masked != 0));
    }
}

TEST_CASE("decode: a 64-bit length with the most significant bit set is rejected (-1)") {
  for (std::uint64_t len : {0x8000000000000000ull, 0xFFFFFFFFFFFFFFFFull, 0x8000000000010000ull,
                            0x800000000000007Dull}) {
    for (int masked = 0; masked < 2; ++masked) {
      CAPTURE(len);
      th::Spec s;
      s.opcode = 2;
      s.mask = masked != 0;
      s.len_form = 64;
      s.override_len = true;
      s.declared = len;
      ws::FrameHeader h;
      CHECK(decode(th::build(s, ""), h) == -1);
    }
  }
  // the largest allowed value still decodes
  th::Spec s;
  s.len_form = 64;
  s.override_len = true;
  s.declared = 0x7FFFFFFFFFFFFFFFull;
  ws::FrameHeader h;
  CHECK(decode(th::build(s, ""), h) == 10);
  CHECK(h.length == 0x7FFFFFFFFFFFFFFFull);
}

TEST_CASE("decode: non-minimal length encodings are rejected (-1)") {
  struct Case {
    int form;
    std::uint64_t len;
    int want;
  };
  const Case cases[] = {
      {16, 0, -1},     {16, 1, -1},      {16, 125, -1},    {16, 126, 4},      {16, 65535, 4},
      {64, 0, -1},     {64, 125, -1},    {64, 126, -1},    {64, 65535, -1},   {64, 65536, 10},
      {64, 0xFFFFFFFFull, 10},
  };
  for (const Case& c : cases)
    for (int masked = 0; masked < 2; ++masked) {
      CAPTURE(c.form);
      CAPTURE(c.len);
      CAPTURE(masked);
      th::Spec s;
      s.opcode = 1;
      s.mask = masked != 0;
      s.len_form = c.form;
      s.override_len = true;
      s.declared = c.len;
      ws::FrameHeader h;
      int want = c.want < 0 ? -1 : c.want + (masked ? 4 : 0);
      CHECK(decode(th::build(s, ""), h) == want);
    }
}

// ---- apply_mask ------------------------------------------------------------------------------

TEST_CASE("mask: apply_mask equals a naive byte loop for sizes 0..100 and offsets 0..7") {
  const u8 keys[][4] = {{0x37, 0xFA, 0x21, 0x3D}, {0x00, 0x00, 0x00, 0x00}, {0xFF, 0x01, 0x80, 0x7F}};
  for (const auto& key : keys)
    for (std::size_t size = 0; size <= 100; ++size)
      for (std::size_t offset = 0; offset < 8; ++offset)
        for (std::size_t align = 0; align < 3; ++align) {
          std::string data = th::random_bytes(size, static_cast<std::uint32_t>(size * 31 + offset));
          std::vector<u8> a(size + 16, 0xCC), b(size + 16, 0xCC);
          std::memcpy(a.data() + 4 + align, data.data(), size);
          std::memcpy(b.data() + 4 + align, data.data(), size);
          ws::apply_mask(a.data() + 4 + align, size, key, offset);
          naive_mask(b.data() + 4 + align, size, key, offset);
          if (a != b) {  // one CHECK per failure, not per byte
            CAPTURE(size);
            CAPTURE(offset);
            CAPTURE(align);
            CHECK(a == b);
          }
        }
  // and one aggregate assertion that the comparison above really ran on changed data
  std::vector<u8> v(40, 0);
  const u8 key[4] = {1, 2, 3, 4};
  ws::apply_mask(v.data(), v.size(), key, 1);
  CHECK(v[0] == 2);
  CHECK(v[1] == 3);
  CHECK(v[2] == 4);
  CHECK(v[3] == 1);
  CHECK(v[39] == 1);
}

TEST_CASE("mask: the RFC 6455 §5.7 example unmasks to \"Hello\"") {
  u8 payload[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
  const u8 key[] = {0x37, 0xfa, 0x21, 0x3d};
  ws::apply_mask(payload, 5, key);
  CHECK(std::string(reinterpret_cast<char*>(payload), 5) == "Hello");
}

TEST_CASE("mask: unmasking in pieces with the running offset equals unmasking at once") {
  std::mt19937 rng(99);
  const u8 key[4] = {0x9C, 0x11, 0x5E, 0xE7};
  for (int round = 0; round < 300; ++round) {
    std::size_t size = rng() % 300;
    std::string data = th::random_bytes(size, static_cast<std::uint32_t>(round));
    std::vector<u8> whole(data.begin(), data.end()), pieces(data.begin(), data.end());
    ws::apply_mask(whole.data(), size, key, 0);
    std::size_t pos = 0;
    while (pos < size) {
      std::size_t n = 1 + rng() % (round % 3 == 0 ? 3 : 40);
      if (n > size - pos) n = size - pos;
      ws::apply_mask(pieces.data() + pos, n, key, pos);
      pos += n;
    }
    CAPTURE(size);
    CHECK(whole == pieces);
  }
}

TEST_CASE("mask: every split point of one payload gives the same result") {
  const u8 key[4] = {0x01, 0x23, 0x45, 0x67};
  std::string data = th::random_bytes(77, 5);
  std::vector<u8> ref(data.begin(), data.end());
  naive_mask(ref.data(), ref.size(), key, 0);
  for (std::size_t split = 0; split <= data.size(); ++split) {
    std::vector<u8> v(data.begin(), data.end());
    ws::apply_mask(v.data(), split, key, 0);
    ws::apply_mask(v.data() + split, v.size() - split, key, split);
    CAPTURE(split);
    CHECK(v == ref);
  }
}

TEST_CASE("mask: offsets that differ by a multiple of 4 are equivalent") {
  const u8 key[4] = {0xDE, 0xAD, 0xBE, 0xEF};
  for (std::size_t off = 0; off < 4; ++off) {
    std::vector<u8> a(37, 0x55), b(37, 0x55);
    ws::apply_mask(a.data(), a.size(), key, off);
    ws::apply_mask(b.data(), b.size(), key, off + 4 * 1001);
    CAPTURE(off);
    CHECK(a == b);
  }
}

TEST_CASE("mask: masking twice is the identity") {
  const u8 key[4] = {0xA5, 0x5A, 0xC3, 0x3C};
  for (std::size_t size : {0u, 1u, 3u, 8u, 31u, 32u, 33u, 1000u}) {
    for (std::size_t offset = 0; offset < 4; ++offset) {
      std::string data = th::random_bytes(size, static_cast<std::uint32_t>(size));
      std::vector<u8> v(data.begin(), data.end());
      ws::apply_mask(v.data(), size, key, offset);
      if (size >= 8) CHECK(std::string(v.begin(), v.end()) != data);  // masking changed it
      ws::apply_mask(v.data(), size, key, offset);
      CAPTURE(size);
      CHECK(std::string(v.begin(), v.end()) == data);
    }
  }
}

TEST_CASE("mask: an all-zero key leaves data unchanged") {
  const u8 key[4] = {0, 0, 0, 0};
  std::string data = th::random_bytes(65, 3);
  std::vector<u8> v(data.begin(), data.end());
  ws::apply_mask(v.data(), v.size(), key, 3);
  CHECK(std::string(v.begin(), v.end()) == data);
}

// ---- opcodes ---------------------------------------------------------------------------------

TEST_CASE("opcodes: enum values are the RFC 6455 §5.2 / §11.8 numbers") {
  CHECK(static_cast<int>(ws::Opcode::continuation) == 0x0);
  CHECK(static_cast<int>(ws::Opcode::text) == 0x1);
  CHECK(static_cast<int>(ws::Opcode::binary) == 0x2);
  CHECK(static_cast<int>(ws::Opcode::close) == 0x8);
  CHECK(static_cast<int>(ws::Opcode::ping) == 0x9);
  CHECK(static_cast<int>(ws::Opcode::pong) == 0xA);
}

TEST_CASE("opcodes: is_control and is_known_opcode over all 16 opcodes") {
  //                        0  1  2  3  4  5  6  7  8  9  A  B  C  D  E  F
  const bool control[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  const bool known[16] = {1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0};
  for (u8 op = 0; op < 16; ++op) {
    CAPTURE(int{op});
    CHECK(ws::is_control(op) == control[op]);
    CHECK(ws::is_known_opcode(op) == known[op]);
  }
  static_assert(ws::is_control(0x8) && !ws::is_control(0x1), "usable in constant expressions");
  static_assert(ws::is_known_opcode(0xA) && !ws::is_known_opcode(0xB), "usable in constant expressions");
}
