// Shared test helpers for test_frame.cpp and test_connection.cpp.
//
// Everything here is written independently of websocket.hpp's own codec, so that the tests
// check the library against RFC 6455 rather than against itself:
//   - a frame builder (any FIN/RSV/opcode/mask, and forced length forms for malformed input),
//   - a frame decoder for what a Connection writes (it unmasks client frames),
//   - SHA-1 + Base64 to compute Sec-WebSocket-Accept (RFC 6455 §4.2.2),
//   - a scenario runner that feeds one input to fresh Connections whole, one byte at a time
//     and in seeded random chunks, and checks that every way gives the same result.
#ifndef WS_TEST_HELPERS_HPP
#define WS_TEST_HELPERS_HPP

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../websocket.hpp"

// REQUIRE, and also leave the function when doctest runs without exceptions: there a failed
// REQUIRE does not stop the test case, so what follows must not index out of range.
#define TH_REQUIRE(...)              \
  do {                               \
    REQUIRE(__VA_ARGS__);            \
    if (!(__VA_ARGS__)) return;      \
  } while (false)

namespace th {

using u8 = std::uint8_t;

// Unbuffered stdout: if a sanitizer aborts the run, the report printed so far is not lost in a
// buffer (std::cout is synchronized with stdio, so this covers doctest's output too).
inline const bool kUnbufferedStdout = [] { return std::setvbuf(stdout, nullptr, _IONBF, 0) == 0; }();

// ---- byte strings ---------------------------------------------------------------------------

inline std::string bytes(std::initializer_list<unsigned> v) {
  std::string s;
  for (unsigned b : v) s += static_cast<char>(static_cast<u8>(b));
  return s;
}

inline u8 at(std::string_view s, std::size_t i) { return static_cast<u8>(s[i]); }

inline std::string hex(std::string_view s, std::size_t max = 48) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    if (i) out += ' ';
    out += d[at(s, i) >> 4];
    out += d[at(s, i) & 15];
  }
  if (s.size() > max) out += " ...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

inline std::string be16(unsigned v) { return bytes({(v >> 8) & 0xFF, v & 0xFF}); }

// Deterministic pseudo-random bytes.
inline std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(static_cast<u8>(rng() & 0xFF));
  return s;
}

// Valid UTF-8 of exactly n bytes, mixing 1-, 2-, 3- and 4-byte code points so that any split
// point is likely to cut one.
inline std::string utf8_text(std::size_t n, std::uint32_t seed = 1) {
  static const char* pieces[] = {"a", "Z", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                 "\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF", "\xDF\xBF", "\x7F"};
  std::mt19937 rng(seed);
  std::string s;
  s.reserve(n);
  while (s.size() < n) {
    const char* p = pieces[rng() % 10];
    std::size_t len = std::strlen(p);
    if (s.size() + len > n) p = "x", len = 1;
    s.append(p, len);
  }
  return s;
}

// ---- frame builder --------------------------------------------------------------------------

struct Spec {
  unsigned opcode = 1;
  bool fin = true;
  unsigned rsv = 0;    // 3 bits, RSV1 = 4
  bool mask = false;
  std::array<u8, 4> key{{0x37, 0xFA, 0x21, 0x3D}};
  int len_form = 0;    // 0: minimal; 7, 16 or 64 forces that form
  bool override_len = false;
  std::uint64_t declared = 0;  // with override_len: the length written in the header
};

inline std::string mask_copy(std::string_view payload, const std::array<u8, 4>& key,
                             std::size_t offset = 0) {
  std::string out(payload);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(at(out, i) ^ key[(offset + i) % 4]);
  return out;
}

inline std::string build(const Spec& s, std::string_view payload) {
  std::string out;
  out += static_cast<char>((s.fin ? 0x80u : 0u) | ((s.rsv & 7u) << 4) | (s.opcode & 15u));
  const std::uint64_t len = s.override_len ? s.declared : payload.size();
  int form = s.len_form;
  if (form == 0) form = len < 126 ? 7 : len <= 0xFFFF ? 16 : 64;
  const unsigned m = s.mask ? 0x80u : 0u;
  if (form == 7) {
    out += static_cast<char>(m | static_cast<unsigned>(len & 0x7F));
  } else if (form == 16) {
    out += static_cast<char>(m | 126u);
    out += be16(static_cast<unsigned>(len & 0xFFFF));
  } else {
    out += static_cast<char>(m | 127u);
    for (int shift = 56; shift >= 0; shift -= 8)
      out += static_cast<char>(static_cast<u8>((len >> shift) & 0xFF));
  }
  if (s.mask) {
    for (u8 k : s.key) out += static_cast<char>(k);
    out += mask_copy(payload, s.key);
  } else {
    out += payload;
  }
  return out;
}

// A frame as the peer of a Connection with role `role` must send it: masked when the peer is
// the client (the Connection is a server), unmasked otherwise. Keys vary from frame to frame.
inline std::string peer_frame(ws::Role role, unsigned opcode, std::string_view payload,
                              bool fin = true, unsigned rsv = 0) {
  static std::uint32_t counter = 0;
  Spec s;
  s.opcode = opcode;
  s.fin = fin;
  s.rsv = rsv;
  s.mask = role == ws::Role::server;
  ++counter;
  s.key = {{static_cast<u8>(0x5A ^ counter), static_cast<u8>(0xC3 + counter * 7),
            static_cast<u8>(counter >> 3 | 0x81), static_cast<u8>(0x1F * counter)}};
  return build(s, payload);
}

inline std::string close_body(unsigned code, std::string_view reason = {}) {
  return be16(code) + std::string(reason);
}

// ---- frame decoder for Connection output ------------------------------------------------------

struct OutFrame {
  bool fin = false;
  unsigned rsv = 0;
  unsigned opcode = 0;
  bool masked = false;
  std::array<u8, 4> key{};
  std::string payload;  // unmasked

  bool operator==(const OutFrame& o) const {  // keys are random: not compared
    return fin == o.fin && rsv == o.rsv && opcode == o.opcode && masked == o.masked &&
           payload == o.payload;
  }
  bool operator!=(const OutFrame& o) const { return !(*this == o); }
  unsigned close_code() const {
    return payload.size() >= 2 ? (unsigned{at(payload, 0)} << 8) | unsigned{at(payload, 1)} : 0u;
  }
  std::string close_reason() const { return payload.size() >= 2 ? payload.substr(2) : std::string(); }
};

inline std::ostream& operator<<(std::ostream& os, const OutFrame& f) {
  return os << "{fin=" << f.fin << " rsv=" << f.rsv << " op=" << f.opcode << " masked=" << f.masked
            << " payload=[" << hex(f.payload, 16) << "]}";
}

struct Decoded {
  std::vector<OutFrame> frames;
  bool ok = true;          // every byte belonged to a well-formed, minimal, complete frame
  std::string error;
};

inline Decoded decode_all(std::string_view s) {
  Decoded d;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.size() - i < 2) { d.ok = false; d.error = "truncated header"; break; }
    OutFrame f;
    u8 b0 = at(s, i), b1 = at(s, i + 1);
    f.fin = (b0 & 0x80) != 0;
    f.rsv = (b0 >> 4) & 7u;
    f.opcode = b0 & 15u;
    f.masked = (b1 & 0x80) != 0;
    std::uint64_t len = b1 & 0x7Fu;
    std::size_t pos = i + 2;
    if (len == 126) {
      if (s.size() - pos < 2) { d.ok = false; d.error = "truncated 16-bit length"; break; }
      len = (std::uint64_t{at(s, pos)} << 8) | at(s, pos + 1);
      pos += 2;
      if (len < 126) { d.ok = false; d.error = "non-minimal 16-bit length"; break; }
    } else if (len == 127) {
      if (s.size() - pos < 8) { d.ok = false; d.error = "truncated 64-bit length"; break; }
      len = 0;
      for (int k = 0; k < 8; ++k) len = (len << 8) | at(s, pos + static_cast<std::size_t>(k));
      pos += 8;
      if (len <= 0xFFFF || (len >> 63)) { d.ok = false; d.error = "bad 64-bit length"; break; }
    }
    if (f.masked) {
      if (s.size() - pos < 4) { d.ok = false; d.error = "truncated mask"; break; }
      for (std::size_t k = 0; k < 4; ++k) f.key[k] = at(s, pos + k);
      pos += 4;
    }
    if (s.size() - pos < len) { d.ok = false; d.error = "truncated payload"; break; }
    std::string_view body = s.substr(pos, static_cast<std::size_t>(len));
    f.payload = f.masked ? mask_copy(body, f.key) : std::string(body);
    d.frames.push_back(f);
    i = pos + static_cast<std::size_t>(len);
  }
  return d;
}

inline OutFrame out_frame(unsigned opcode, std::string_view payload, bool masked, bool fin = true) {
  OutFrame f;
  f.opcode = opcode;
  f.payload = std::string(payload);
  f.masked = masked;
  f.fin = fin;
  return f;
}

// ---- SHA-1 (FIPS 180-4) and Base64, for Sec-WebSocket-Accept --------------------------------

inline std::string sha1(std::string_view msg) {
  std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  std::string m(msg);
  const std::uint64_t bit_len = std::uint64_t{msg.size()} * 8u;
  m += static_cast<char>(0x80);
  while (m.size() % 64 != 56) m += '\0';
  for (int shift = 56; shift >= 0; shift -= 8) m += static_cast<char>(static_cast<u8>(bit_len >> shift));
  auto rol = [](std::uint32_t x, unsigned n) { return (x << n) | (x >> (32u - n)); };
  for (std::size_t block = 0; block < m.size(); block += 64) {
    std::uint32_t w[80];
    for (std::size_t t = 0; t < 16; ++t)
      w[t] = (std::uint32_t{at(m, block + 4 * t)} << 24) | (std::uint32_t{at(m, block + 4 * t + 1)} << 16) |
             (std::uint32_t{at(m, block + 4 * t + 2)} << 8) | std::uint32_t{at(m, block + 4 * t + 3)};
    for (std::size_t t = 16; t < 80; ++t) w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (std::size_t t = 0; t < 80; ++t) {
      std::uint32_t f = t < 20 ? ((b & c) | (~b & d)) : t < 40 ? (b ^ c ^ d)
                        : t < 60 ? ((b & c) | (b & d) | (c & d)) : (b ^ c ^ d);
      std::uint32_t k = t < 20 ? 0x5A827999u : t < 40 ? 0x6ED9EBA1u : t < 60 ? 0x8F1BBCDCu : 0xCA62C1D6u;
      std::uint32_t tmp = rol(a, 5) + f + e + k + w[t];
      e = d; d = c; c = rol(b, 30); b = a; a = tmp;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  std::string out;
  for (std::uint32_t v : h)
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(static_cast<u8>(v >> shift));
  return out;
}

inline std::string base64(std::string_view in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    unsigned n = (unsigned{at(in, i)} << 16) | (unsigned{at(in, i + 1)} << 8) | at(in, i + 2);
    out += a[(n >> 18) & 63]; out += a[(n >> 12) & 63]; out += a[(n >> 6) & 63]; out += a[n & 63];
  }
  if (in.size() - i == 1) {
    unsigned n = unsigned{at(in, i)} << 16;
    out += a[(n >> 18) & 63]; out += a[(n >> 12) & 63]; out += "==";
  } else if (in.size() - i == 2) {
    unsigned n = (unsigned{at(in, i)} << 16) | (unsigned{at(in, i + 1)} << 8);
    out += a[(n >> 18) & 63]; out += a[(n >> 12) & 63]; out += a[(n >> 6) & 63]; out += '=';
  }
  return out;
}

inline std::string accept_for(std::string_view key) {
  return base64(sha1(std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
}

// ---- a minimal HTTP head reader (for what the Connection writes) ------------------------------

struct Head {
  bool ok = false;
  std::string start_line;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  std::size_t size = 0;  // head + body bytes

  static std::string lower(std::string s) {
    for (char& c : s) if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return s;
  }
  int count(std::string_view name) const {
    int n = 0;
    for (const auto& f : fields) if (lower(f.first) == lower(std::string(name))) ++n;
    return n;
  }
  std::string get(std::string_view name) const {
    for (const auto& f : fields) if (lower(f.first) == lower(std::string(name))) return f.second;
    return "<absent>";
  }
  int status() const {  // "HTTP/1.1 101 ..."
    if (start_line.size() < 12 || start_line.compare(0, 5, "HTTP/") != 0) return -1;
    return std::stoi(start_line.substr(9, 3));
  }
};

// Reads one head (and a Content-Length body) at the start of s.
inline Head read_head(std::string_view s) {
  Head h;
  std::size_t end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) return h;
  std::string_view head = s.substr(0, end);
  std::size_t eol = head.find("\r\n");
  h.start_line = std::string(head.substr(0, eol));
  while (eol != std::string_view::npos) {
    std::size_t next = head.find("\r\n", eol + 2);
    std::string_view line = head.substr(eol + 2, next == std::string_view::npos ? std::string_view::npos : next - eol - 2);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return h;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    h.fields.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    eol = next;
  }
  h.size = end + 4;
  if (h.count("Content-Length") == 1) {
    std::size_t n = std::stoul(h.get("Content-Length"));
    if (s.size() - h.size < n) return h;
    h.body = std::string(s.substr(h.size, n));
    h.size += n;
  }
  h.ok = true;
  return h;
}

// The RFC 6455 §1.3 sample key and its accept value.
constexpr const char* kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr const char* kSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

inline std::string request(std::string_view key = kSampleKey, std::string_view extra = {}) {
  std::string r = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: ";
  r += key;
  r += "\r\nSec-WebSocket-Version: 13\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

// ---- events ---------------------------------------------------------------------------------

struct Ev {
  ws::EventType type = ws::EventType::open;
  std::string data;
  bool fin = true;
  std::uint16_t code = 0;
  bool operator==(const Ev& o) const {
    return type == o.type && data == o.data && fin == o.fin && code == o.code;
  }
  bool operator!=(const Ev& o) const { return !(*this == o); }
};

inline const char* type_name(ws::EventType t) {
  switch (t) {
    case ws::EventType::open: return "open";
    case ws::EventType::text: return "text";
    case ws::EventType::binary: return "binary";
    case ws::EventType::ping: return "ping";
    case ws::EventType::pong: return "pong";
    case ws::EventType::close: return "close";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& os, const Ev& e) {
  os << "{" << type_name(e.type) << " fin=" << e.fin << " code=" << e.code << " data=";
  if (e.data.size() <= 40) os << '"' << e.data << '"';
  else os << "(" << e.data.size() << " bytes)";
  return os << "}";
}

template <class T>
std::ostream& print_vec(std::ostream& os, const std::vector<T>& v) {
  os << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os << "]";
}

inline Ev ev(ws::EventType t, std::string_view data = {}, bool fin = true, std::uint16_t code = 0) {
  Ev e;
  e.type = t;
  e.data = std::string(data);
  e.fin = fin;
  e.code = code;
  return e;
}
inline Ev text(std::string_view d, bool fin = true) { return ev(ws::EventType::text, d, fin); }
inline Ev binary(std::string_view d, bool fin = true) { return ev(ws::EventType::binary, d, fin); }
inline Ev ping(std::string_view d) { return ev(ws::EventType::ping, d); }
inline Ev pong(std::string_view d) { return ev(ws::EventType::pong, d); }
inline Ev closed(std::uint16_t code, std::string_view reason) { return ev(ws::EventType::close, reason, true, code); }

inline Ev to_ev(const ws::Event& e) {
  return ev(e.type, e.data, e.fin, e.code);
}

// ---- scenario runner --------------------------------------------------------------------------

struct Scenario {
  std::function<ws::Connection()> make;
  // The input; it may depend on the connection (a client's key). Default: `input`.
  std::function<std::string(ws::Connection&)> make_input;
  std::string input;
  // Called inside the event callback after the event was recorded (e.g. to echo or close).
  std::function<void(ws::Connection&, const ws::Event&)> react;
  // Streaming: merge consecutive pieces of a message before comparing runs.
  bool merge_pieces = false;
};

struct Result {
  std::vector<Ev> events;
  std::vector<Ev> raw_events;   // before merging
  std::string raw_out;          // everything the connection wrote
  std::string request;          // a client's request head at the start of raw_out, if any
  std::string http;             // a server's response head (+ body) at the start of raw_out, if any
  Decoded out;                  // the frames after it
  ws::Connection::State state = ws::Connection::State::handshake;
  ws::Errc error = ws::Errc::ok;
  bool used_ok = true;          // receive() used every byte while the connection stayed up
  std::size_t calls = 0;

  std::size_t count(unsigned opcode) const {
    std::size_t n = 0;
    for (const auto& f : out.frames) n += f.opcode == opcode;
    return n;
  }
};

inline std::vector<Ev> merge(const std::vector<Ev>& in) {
  std::vector<Ev> out;
  bool open_piece = false;
  for (const Ev& e : in) {
    bool data = e.type == ws::EventType::text || e.type == ws::EventType::binary;
    if (data && open_piece) {
      // append to the pending piece (control events may sit between pieces)
      for (std::size_t i = out.size(); i-- > 0;) {
        if ((out[i].type == ws::EventType::text || out[i].type == ws::EventType::binary) && !out[i].fin) {
          out[i].data += e.data;
          out[i].fin = e.fin;
          break;
        }
      }
    } else {
      out.push_back(e);
    }
    if (data) open_piece = !e.fin;
  }
  return out;
}

inline void split_output(Result& r) {
  std::string_view s = r.raw_out;
  if (s.compare(0, 4, "GET ") == 0) {  // a client's own request (its key is random)
    Head h = read_head(s);
    r.request = std::string(s.substr(0, h.ok ? h.size : s.size()));
    s.remove_prefix(r.request.size());
  }
  if (s.compare(0, 5, "HTTP/") == 0) {
    Head h = read_head(s);
    if (h.ok) {
      r.http = std::string(s.substr(0, h.size));
      s.remove_prefix(h.size);
    } else {
      r.http = std::string(s);
      s = {};
    }
  }
  r.out = decode_all(s);
}

// Feeds the scenario's input in chunks of the given sizes (the last chunk takes the rest).
inline Result run_chunks(const Scenario& sc, const std::function<std::size_t(std::size_t)>& next_chunk) {
  Result r;
  ws::Connection c = sc.make();
  std::string input = sc.make_input ? sc.make_input(c) : sc.input;  // this run's own copy
  auto on_event = [&](const ws::Event& e) {
    r.raw_events.push_back(to_ev(e));
    if (sc.react) sc.react(c, e);
  };
  std::size_t pos = 0;
  while (pos < input.size()) {
    std::size_t n = next_chunk(input.size() - pos);
    if (n == 0 || n > input.size() - pos) n = input.size() - pos;
    std::size_t used = c.receive(&input[pos], n, on_event);
    ++r.calls;
    if (c.state() != ws::Connection::State::closed && used != n) r.used_ok = false;
    if (used > n) r.used_ok = false;
    pos += n;
  }
  r.events = sc.merge_pieces ? merge(r.raw_events) : r.raw_events;
  r.raw_out = std::string(c.pending_output());
  r.state = c.state();
  r.error = c.error().code;
  split_output(r);
  return r;
}

inline Result run_whole(const Scenario& sc) {
  return run_chunks(sc, [](std::size_t rest) { return rest; });
}

inline Result run_bytes(const Scenario& sc) {
  return run_chunks(sc, [](std::size_t) { return std::size_t{1}; });
}

inline Result run_random(const Scenario& sc, std::uint32_t seed, std::size_t max_chunk) {
  std::mt19937 rng(seed);
  return run_chunks(sc, [&](std::size_t) {
    return std::size_t{1} + static_cast<std::size_t>(rng() % max_chunk);
  });
}

inline Result run_two(const Scenario& sc, std::size_t first) {
  bool done = false;
  return run_chunks(sc, [&](std::size_t rest) {
    if (done) return rest;
    done = true;
    return first == 0 ? rest : first;
  });
}

inline void check_same(const Result& base, const Result& r, const char* how) {
  INFO("split: ", how);
  CHECK(r.used_ok);
  CHECK(r.events == base.events);
  CHECK(r.http == base.http);
  CHECK(r.out.frames == base.out.frames);
  CHECK(r.out.ok == base.out.ok);
  CHECK(r.state == base.state);
  CHECK(r.error == base.error);
}

// Runs the scenario whole, byte by byte, and in random chunks for fixed seeds; checks that all
// give the same events, output frames and state; returns the whole-input result.
inline Result run(const Scenario& sc) {
  Result base = run_whole(sc);
  CHECK(base.used_ok);
  CHECK_MESSAGE(base.out.ok, base.out.error);
  check_same(base, run_bytes(sc), "one byte at a time");
  static const std::pair<std::uint32_t, std::size_t> plans[] = {
      {1, 3}, {2, 7}, {3, 20}, {4, 150}, {5, 70000}};
  for (const auto& p : plans) {
    std::string how = "random chunks, seed " + std::to_string(p.first) + ", max " + std::to_string(p.second);
    check_same(base, run_random(sc, p.first, p.second), how.c_str());
  }
  return base;
}

inline Scenario scenario(ws::Role role, std::string input, ws::ConnectionOptions opt = {}) {
  Scenario sc;
  sc.make = [role, opt] {
    ws::Connection c(role, opt);
    c.assume_open();
    return c;
  };
  sc.input = std::move(input);
  return sc;
}

inline const char* role_name(ws::Role r) { return r == ws::Role::client ? "client" : "server"; }

}  // namespace th

namespace doctest {
template <>
struct StringMaker<std::vector<th::Ev>> {
  static String convert(const std::vector<th::Ev>& v) {
    std::ostringstream os;
    th::print_vec(os, v);
    return String(os.str().c_str());
  }
};
template <>
struct StringMaker<std::vector<th::OutFrame>> {
  static String convert(const std::vector<th::OutFrame>& v) {
    std::ostringstream os;
    th::print_vec(os, v);
    return String(os.str().c_str());
  }
};
}  // namespace doctest

#endif  // WS_TEST_HELPERS_HPP
