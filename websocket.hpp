// websocket.hpp — a single-header WebSocket library (RFC 6455), client and server. C++17.
//
// Install: copy this file; `#include "websocket.hpp"`. Zero dependencies beyond the C++
// standard library and the OS socket API. Builds with -fno-exceptions -fno-rtti.
//
// The header reads top to bottom like RFC 6455, in layers; lower layers never call upper ones:
//   §0 Primitives   >>primitives   config macros, errors, byte order, SHA-1, Base64, UTF-8, random
//   §1 HTTP upgrade >>http         incremental request/response parser, serializer, handshake rules
//   §2 Frame codec  >>frame        frame header encode/decode, masking
//   §3 Connection   >>connection   sans-I/O state machine: bytes in -> events out; send_*() -> bytes out
//
// The sans-I/O core in five lines (a driver moves bytes between a socket and a Connection):
//
//   ws::Connection conn(ws::Role::server);
//   conn.receive(buf, n, [&](const ws::Event& e) {          // bytes the socket gave us
//     if (e.type == ws::EventType::text) conn.send_text(e.data);
//   });
//   write(fd, conn.pending_output().data(), ...); conn.consume_output(written);
//
// Configuration (define before including; every limit is also a runtime option in ws::Limits):
//   WEBSOCKET_MAX_MESSAGE      largest message (and frame) accepted, bytes   default 16 MiB
//   WEBSOCKET_MAX_SEND_BUFFER  most bytes queued for sending per connection  default 32 MiB
//   WEBSOCKET_MAX_HTTP_LINE    longest handshake line (request line/header)  default 8 KiB
//   WEBSOCKET_MAX_HTTP_HEADERS most header lines in a handshake               default 100
//   WEBSOCKET_MAX_HTTP_HEAD    most bytes in a whole handshake head          default 32 KiB
//
// License: MIT (see README.md).
#ifndef WEBSOCKET_HPP
#define WEBSOCKET_HPP

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define WEBSOCKET_SSE2 1
#endif

// Driver selection (§5): WEBSOCKET_USE_POLL (default) or WEBSOCKET_USE_BLOCKING;
// WEBSOCKET_NO_THREADS leaves out std::thread and mutexes (one thread does everything).
#if defined(WEBSOCKET_USE_POLL) && defined(WEBSOCKET_USE_BLOCKING)
#error "define WEBSOCKET_USE_POLL or WEBSOCKET_USE_BLOCKING, not both"
#endif
#if !defined(WEBSOCKET_USE_POLL) && !defined(WEBSOCKET_USE_BLOCKING)
#define WEBSOCKET_USE_POLL
#endif
#ifndef WEBSOCKET_NO_THREADS
#include <mutex>
#include <thread>
#endif

#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>
#ifdef _MSC_VER
#pragma comment(lib, "ws2_32")
#pragma comment(lib, "bcrypt")
#endif
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
#include <stdlib.h>  // arc4random_buf
#endif
#endif

// =====================================================================================
// ==== §0 Primitives ====                                                 >>primitives
// =====================================================================================

#ifndef WEBSOCKET_MAX_MESSAGE
#define WEBSOCKET_MAX_MESSAGE (16u * 1024u * 1024u)
#endif
#ifndef WEBSOCKET_MAX_SEND_BUFFER
#define WEBSOCKET_MAX_SEND_BUFFER (32u * 1024u * 1024u)
#endif
#ifndef WEBSOCKET_MAX_HTTP_LINE
#define WEBSOCKET_MAX_HTTP_LINE (8u * 1024u)
#endif
#ifndef WEBSOCKET_MAX_HTTP_HEADERS
#define WEBSOCKET_MAX_HTTP_HEADERS 100u
#endif
#ifndef WEBSOCKET_MAX_HTTP_HEAD
#define WEBSOCKET_MAX_HTTP_HEAD (32u * 1024u)
#endif

namespace ws {

// ---- Errors: values, never exceptions ------------------------------------------------

enum class Errc : std::uint8_t {
  ok = 0,
  // §1 HTTP upgrade
  http_line_too_long,     // a request/status line or header line exceeds Limits::http.max_line
  http_head_too_large,    // the whole head exceeds Limits::http.max_head
  http_too_many_headers,  // more header lines than Limits::http.max_headers
  http_malformed,         // bad syntax in the start line or a header
  http_version,           // not HTTP/1.x
  handshake_rejected,     // server: the request is not an acceptable upgrade
  handshake_failed,       // client: the response does not complete the handshake
  bad_url,
  bad_argument,           // e.g. a header value with CR/LF, a subprotocol that is not a token
  // §3 Connection
  protocol_error,         // the peer broke RFC 6455 (closed with 1002)
  invalid_payload,        // invalid UTF-8 from the peer (closed with 1007)
  message_too_big,        // a frame or message over the limit (closed with 1009)
  not_open,               // send while the connection is not open
  send_buffer_full,       // the send buffer limit would be exceeded
  invalid_utf8,           // send_text() with invalid UTF-8
  invalid_close,          // close() with a code or reason that may not be sent
  control_too_big,        // ping/pong payload over 125 bytes
  random_failed,          // the OS CSPRNG failed
  // §4-§6 sockets, drivers, API
  resolve_failed,         // getaddrinfo found no address
  connect_failed,         // no address accepted the connection
  socket_error,           // a socket call failed
  timeout,                // nothing happened within the time given
  closed,                 // the connection is closed
};

// An error is a code and a static, human-readable message (no allocation, no request bytes).
struct Error {
  Errc code = Errc::ok;
  const char* text = "";

  Error() = default;
  Error(Errc c, const char* t) : code(c), text(t) {}
  explicit operator bool() const { return code != Errc::ok; }
  const char* message() const { return code == Errc::ok ? "ok" : text; }
};

// RFC 6455 §7.4.1 status codes.
namespace close_code {
constexpr std::uint16_t normal = 1000;
constexpr std::uint16_t going_away = 1001;
constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t unsupported_data = 1003;
constexpr std::uint16_t no_status = 1005;  // never on the wire: "the close frame had no code"
constexpr std::uint16_t abnormal = 1006;   // never on the wire: "no close frame at all"
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t policy_violation = 1008;
constexpr std::uint16_t message_too_big = 1009;
constexpr std::uint16_t mandatory_extension = 1010;
constexpr std::uint16_t internal_error = 1011;
constexpr std::uint16_t service_restart = 1012;
constexpr std::uint16_t try_again_later = 1013;
constexpr std::uint16_t bad_gateway = 1014;
}  // namespace close_code

namespace detail {

// ---- Byte order (RFC 6455 §5.2: multibyte lengths are in network byte order) -------------

inline std::uint16_t load_be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline std::uint64_t load_be64(const std::uint8_t* p) {
  return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void store_be16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
inline void store_be64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}

// ---- ASCII helpers (HTTP names and tokens compare case-insensitively) ---------------------

inline char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

inline std::string_view trim(std::string_view s) {  // RFC 7230 OWS: spaces and tabs
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 7230 §3.2.6 tchar
inline bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

inline bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

// Calls f(element) for each non-empty element of a comma-separated list (RFC 7230 §7).
template <class F>
void for_each_list_item(std::string_view list, F&& f) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace detail

// ---- SHA-1 (RFC 3174), used only for Sec-WebSocket-Accept -------------------------------

class Sha1 {
 public:
  void update(const void* data, std::size_t size) {
    if (size == 0) return;  // data may be null (an empty string_view): no memcpy from null
    const auto* p = static_cast<const std::uint8_t*>(data);
    total_ += size;
    if (used_ > 0) {
      std::size_t take = size < 64 - used_ ? size : 64 - used_;
      std::memcpy(block_ + used_, p, take);
      used_ += take;
      p += take;
      size -= take;
      if (used_ < 64) return;
      compress(block_);
      used_ = 0;
    }
    for (; size >= 64; p += 64, size -= 64) compress(p);
    if (size > 0) std::memcpy(block_, p, size);
    used_ = size;
  }

  std::array<std::uint8_t, 20> finish() {
    // RFC 3174 §4: append 0x80, zeros up to 56 mod 64, then the bit length as 64 bits.
    std::uint64_t bits = total_ * 8;
    std::uint8_t pad[64] = {0x80};
    update(pad, used_ < 56 ? 56 - used_ : 120 - used_);
    std::uint8_t length[8];
    detail::store_be64(length, bits);
    update(length, 8);
    std::array<std::uint8_t, 20> digest{};
    for (int i = 0; i < 5; ++i) detail::store_be32(&digest[static_cast<std::size_t>(i) * 4], h_[i]);
    return digest;
  }

 private:
  static std::uint32_t rotl(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

  void compress(const std::uint8_t* block) {
    std::uint32_t w[80];
    for (int t = 0; t < 16; ++t) w[t] = detail::load_be32(block + 4 * t);
    for (int t = 16; t < 80; ++t) w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
    for (int t = 0; t < 80; ++t) {
      std::uint32_t f, k;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999u;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1u;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDCu;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6u;
      }
      std::uint32_t temp = rotl(a, 5) + f + e + w[t] + k;
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = temp;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
  }

  std::uint32_t h_[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  std::uint8_t block_[64] = {};
  std::size_t used_ = 0;
  std::uint64_t total_ = 0;
};

inline std::array<std::uint8_t, 20> sha1(const void* data, std::size_t size) {
  Sha1 h;
  h.update(data, size);
  return h.finish();
}

// ---- Base64 (RFC 4648 §4, with padding) ---------------------------------------------------

inline std::string base64_encode(const void* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (std::size_t i = 0; i < size; i += 3) {
    std::uint32_t n = std::uint32_t{p[i]} << 16;
    if (i + 1 < size) n |= std::uint32_t{p[i + 1]} << 8;
    if (i + 2 < size) n |= p[i + 2];
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < size ? kAlphabet[n & 63] : '=';
  }
  return out;
}

namespace detail {
inline int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace detail

// Strict decoding: length a multiple of 4, padding only at the end, unused bits zero.
inline bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int pads = (last && in[i + 3] == '=') ? (in[i + 2] == '=' ? 2 : 1) : 0;
    std::uint32_t n = 0;
    for (int j = 0; j < 4; ++j) {
      int v = j >= 4 - pads ? 0 : detail::base64_value(in[i + static_cast<std::size_t>(j)]);
      if (v < 0) return false;
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    if ((pads == 1 && (n & 0xFF)) || (pads == 2 && (n & 0xFFFF))) return false;
    out += static_cast<char>(n >> 16);
    if (pads < 2) out += static_cast<char>((n >> 8) & 0xFF);
    if (pads < 1) out += static_cast<char>(n & 0xFF);
  }
  return true;
}

// RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID)).
inline std::string accept_key(std::string_view key) {
  static constexpr char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  Sha1 h;
  h.update(key.data(), key.size());
  h.update(kGuid, sizeof kGuid - 1);
  std::array<std::uint8_t, 20> digest = h.finish();
  return base64_encode(digest.data(), digest.size());
}

// ---- UTF-8 validation (RFC 3629 §4; RFC 6455 §8.1) -------------------------------------

namespace detail {
// A shift-based DFA: a state is a bit offset (6 * its number) into a 64-bit row, and
// kUtf8Dfa.row[byte] >> state holds the next state in its low 6 bits: one load and one shift
// a byte, no branch. The states follow RFC 3629 §4, the table of well-formed sequences.
enum Utf8State : std::uint8_t {
  kUtf8Accept = 0,   // between code points
  kUtf8Cont1 = 6,    // 1 more continuation byte 80..BF
  kUtf8Cont2 = 12,   // 2 more, the next 80..BF
  kUtf8Cont3 = 18,   // 3 more, the next 80..BF
  kUtf8E0 = 24,      // after E0: A0..BF (no overlongs below U+0800), then 1 more
  kUtf8ED = 30,      // after ED: 80..9F (no surrogates U+D800..DFFF), then 1 more
  kUtf8F0 = 36,      // after F0: 90..BF (no overlongs below U+10000), then 2 more
  kUtf8F4 = 42,      // after F4: 80..8F (nothing above U+10FFFF), then 2 more
  kUtf8Reject = 48,  // absorbing: 80..C1 or F5..FF as a lead byte, a bad continuation
};
struct Utf8Dfa {
  std::uint64_t row[256];
};
constexpr std::uint64_t utf8_dfa_row(unsigned b) {
  std::uint64_t r = 0;
  for (unsigned st = 0; st <= kUtf8Reject; st += 6) r |= std::uint64_t{kUtf8Reject} << st;
  auto set = [&r](unsigned from, unsigned next) {
    r = (r & ~(std::uint64_t{63} << from)) | (std::uint64_t{next} << from);
  };
  if (b < 0x80) set(kUtf8Accept, kUtf8Accept);
  if (b >= 0x80 && b <= 0xBF) {
    set(kUtf8Cont1, kUtf8Accept);
    set(kUtf8Cont2, kUtf8Cont1);
    set(kUtf8Cont3, kUtf8Cont2);
    if (b >= 0xA0) set(kUtf8E0, kUtf8Cont1);
    if (b <= 0x9F) set(kUtf8ED, kUtf8Cont1);
    if (b >= 0x90) set(kUtf8F0, kUtf8Cont2);
    if (b <= 0x8F) set(kUtf8F4, kUtf8Cont2);
  }
  if (b >= 0xC2 && b <= 0xDF) set(kUtf8Accept, kUtf8Cont1);
  if (b == 0xE0) set(kUtf8Accept, kUtf8E0);
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) set(kUtf8Accept, kUtf8Cont2);
  if (b == 0xED) set(kUtf8Accept, kUtf8ED);
  if (b == 0xF0) set(kUtf8Accept, kUtf8F0);
  if (b >= 0xF1 && b <= 0xF3) set(kUtf8Accept, kUtf8Cont3);
  if (b == 0xF4) set(kUtf8Accept, kUtf8F4);
  return r;
}
constexpr Utf8Dfa make_utf8_dfa() {
  Utf8Dfa t{};
  for (unsigned b = 0; b < 256; ++b) t.row[b] = utf8_dfa_row(b);
  return t;
}
inline constexpr Utf8Dfa kUtf8Dfa = make_utf8_dfa();

inline std::uint64_t load8(const std::uint8_t* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
// True when no byte of p[0..16) / p[0..64) has its high bit set. is_ascii16 reads 8-byte
// words on purpose: Connection validates right after apply_mask() wrote the payload in 8-byte
// words, and a 16-byte load over two fresh 8-byte stores stalls on store forwarding.
inline bool is_ascii16(const std::uint8_t* p) {
  return ((load8(p) | load8(p + 8)) & 0x8080808080808080ull) == 0;
}
inline bool is_ascii64(const std::uint8_t* p) {
#if defined(WEBSOCKET_SSE2)
  // An OR tree of four 16-byte loads (apply_mask() writes 64-byte blocks as 16-byte stores).
  // Portable 8-byte words are no faster than is_ascii16 here: GCC 12 turns their OR tree
  // into one serial chain.
  const auto* q = reinterpret_cast<const __m128i*>(p);
  const __m128i a = _mm_or_si128(_mm_loadu_si128(q), _mm_loadu_si128(q + 1));
  const __m128i b = _mm_or_si128(_mm_loadu_si128(q + 2), _mm_loadu_si128(q + 3));
  return _mm_movemask_epi8(_mm_or_si128(a, b)) == 0;
#else
  return is_ascii16(p) && is_ascii16(p + 16) && is_ascii16(p + 32) && is_ascii16(p + 48);
#endif
}

#if defined(WEBSOCKET_SSE2)
// Mixed text, 16 bytes at a time. Each byte c is checked against the 3 bytes before it
// (p1, p2, p3), which is all that well-formed UTF-8 (RFC 3629 §4) asks of it:
//   1. c is a continuation byte (80..BF) exactly when one is due: p1 >= C0 (any lead),
//      p2 >= E0 (a 3- or 4-byte lead) or p3 >= F0 (a 4-byte lead);
//   2. c is never C0, C1 (overlong 2-byte leads) or F5..FF (beyond U+10FFFF);
//   3. the first continuation is narrower after four leads: A0..BF after E0 (no overlongs),
//      80..9F after ED (no surrogates), 90..BF after F0 (no overlongs), 80..8F after F4.
// p[-3..-1] must be readable and end complete sequences; n is a multiple of 16. A sequence
// that starts in the last 3 bytes and goes on past p[n] is left for the caller to finish.
inline bool utf8_blocks_sse2(const std::uint8_t* p, std::size_t n) {
  auto load = [p](std::ptrdiff_t at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at)); };
  auto splat = [](int b) { return _mm_set1_epi8(static_cast<char>(b)); };
  auto is = [](__m128i a, int b) { return _mm_cmpeq_epi8(a, _mm_set1_epi8(static_cast<char>(b))); };
  const __m128i zero = _mm_setzero_si128();
  __m128i bad = zero;  // nonzero bytes mark errors
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); i += 16) {
    const __m128i c = load(i), p1 = load(i - 1), p2 = load(i - 2), p3 = load(i - 3);
    // Rule 1. Signed compares: bytes 80..FF are negative, and 80..BF are the ones below C0.
    const __m128i due = _mm_or_si128(_mm_subs_epu8(p1, splat(0xBF)),
                                     _mm_or_si128(_mm_subs_epu8(p2, splat(0xDF)), _mm_subs_epu8(p3, splat(0xEF))));
    const __m128i cont = _mm_cmplt_epi8(c, splat(0xC0));
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(_mm_cmpeq_epi8(due, zero), cont));
    // Rule 2.
    bad = _mm_or_si128(bad, _mm_or_si128(_mm_subs_epu8(c, splat(0xF4)), is(_mm_and_si128(c, splat(0xFE)), 0xC0)));
    // Rule 3 (where c is not a continuation at all, rule 1 has flagged it already).
    const __m128i low = _mm_or_si128(_mm_and_si128(is(p1, 0xE0), _mm_cmplt_epi8(c, splat(0xA0))),
                                     _mm_and_si128(is(p1, 0xF0), _mm_cmplt_epi8(c, splat(0x90))));
    const __m128i high = _mm_or_si128(_mm_and_si128(is(p1, 0xED), _mm_cmpgt_epi8(c, splat(0x9F))),
                                      _mm_and_si128(is(p1, 0xF4), _mm_cmpgt_epi8(c, splat(0x8F))));
    bad = _mm_or_si128(bad, _mm_or_si128(low, high));
  }
  return _mm_movemask_epi8(_mm_cmpeq_epi8(bad, zero)) == 0xFFFF;
}
#endif
}  // namespace detail

// Incremental: a code point may be split across frames, so the state survives between
// feed() calls. Fails fast: feed() returns false, and stays failed, once it meets a byte that
// cannot continue a well-formed sequence (overlongs, surrogates U+D800..DFFF, > U+10FFFF,
// 5/6-byte forms); it reads at most 16 bytes past that byte (on x86, in mixed text of 64
// bytes or more, the rest of the piece).
class Utf8Validator {
 public:
  bool feed(const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    std::uint64_t s = state_;
    if (s == detail::kUtf8Reject) return false;
    std::size_t i = 0;
    while (i < size) {
      if (s == detail::kUtf8Accept) {
        // ASCII fast path: 64, then 16 bytes at a time while no byte has its high bit set; a
        // tail under 16 bytes is checked with one load that overlaps bytes already seen.
        while (i + 64 <= size && detail::is_ascii64(p + i)) i += 64;
        while (i + 16 <= size && detail::is_ascii16(p + i)) i += 16;
        if (size - i < 16 && size >= 16 && detail::is_ascii16(p + size - 16)) i = size;
        if (i == size) break;
#if defined(WEBSOCKET_SSE2)
        // Mixed text: whole 16-byte blocks at once, when the 3 bytes before are in this piece.
        if (i >= 3 && size - i >= 64) {
          const std::size_t n = (size - i) & ~std::size_t{15};
          if (!detail::utf8_blocks_sse2(p + i, n)) return reject();
          i += n;
          // A sequence that starts in the last 3 bytes may go on past them: the DFA finishes it.
          if (p[i - 3] >= 0xF0) i -= 3;
          else if (p[i - 2] >= 0xE0) i -= 2;
          else if (p[i - 1] >= 0xC0) i -= 1;
          continue;
        }
#endif
      }
      // The DFA over up to 16 bytes without a branch, then one check: the reject state is
      // absorbing, so nothing after a bad byte is accepted.
      const std::size_t end = size - i > 16 ? i + 16 : size;
      for (; i < end; ++i) s = detail::kUtf8Dfa.row[p[i]] >> (s & 63);
      s &= 63;
      if (s == detail::kUtf8Reject) return reject();
    }
    state_ = static_cast<std::uint8_t>(s);
    return true;
  }

  // True when no code point is left unfinished (and nothing failed).
  bool complete() const { return state_ == detail::kUtf8Accept; }
  void reset() { *this = Utf8Validator(); }

 private:
  bool reject() {
    state_ = detail::kUtf8Reject;
    return false;
  }

  std::uint8_t state_ = detail::kUtf8Accept;
};

inline bool is_valid_utf8(std::string_view s) {
  Utf8Validator v;
  return v.feed(s.data(), s.size()) && v.complete();
}

// ---- Random bytes from the OS CSPRNG (RFC 6455 §10.3: masking keys must be unpredictable) --

inline bool random_bytes(void* out, std::size_t size) {
#if defined(_WIN32)
  return BCRYPT_SUCCESS(BCryptGenRandom(nullptr, static_cast<PUCHAR>(out), static_cast<ULONG>(size),
                                        BCRYPT_USE_SYSTEM_PREFERRED_RNG));
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
  arc4random_buf(out, size);
  return true;
#else
  auto* p = static_cast<std::uint8_t*>(out);
#if defined(__linux__)
  while (size > 0) {
    ssize_t n = getrandom(p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // e.g. ENOSYS on an old kernel: fall back to /dev/urandom
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  if (size == 0) return true;
#endif
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  while (size > 0) {
    ssize_t n = ::read(fd, p, size);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  ::close(fd);
  return size == 0;
#endif
}

// =====================================================================================
// ==== §1 HTTP upgrade (RFC 6455 §4, RFC 7230) ====                               >>http
// =====================================================================================

struct HttpLimits {
  std::size_t max_line = WEBSOCKET_MAX_HTTP_LINE;        // request/status line or one header line
  std::size_t max_headers = WEBSOCKET_MAX_HTTP_HEADERS;  // header lines
  std::size_t max_head = WEBSOCKET_MAX_HTTP_HEAD;        // the whole head, empty line included
};

struct HttpHeader {
  std::string name, value;
};

// Header fields; names compare case-insensitively (RFC 7230 §3.2).
struct HttpHeaders {
  std::vector<HttpHeader> fields;

  // The field's value, or nullptr. A parsed message holds each name once: repeats are combined.
  const std::string* find(std::string_view name) const {
    for (const HttpHeader& f : fields)
      if (detail::iequals(f.name, name)) return &f.value;
    return nullptr;
  }
  std::string_view get(std::string_view name) const {
    const std::string* v = find(name);
    return v ? std::string_view(*v) : std::string_view();
  }
  bool has(std::string_view name) const { return find(name) != nullptr; }

  // True when the comma-separated list in `name` holds `token` (case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const {
    bool found = false;
    detail::for_each_list_item(get(name), [&](std::string_view item) {
      if (detail::iequals(item, token)) found = true;
    });
    return found;
  }

  // Appends a field (a builder may repeat a name, e.g. Set-Cookie).
  void add(std::string_view name, std::string_view value) {
    fields.push_back({std::string(name), std::string(value)});
  }

  // RFC 7230 §3.2.2: a repeated field is equivalent to one field with the values joined by
  // commas (except Set-Cookie, kept apart); RFC 6265 §5.4 joins cookies with "; ".
  void combine(std::string_view name, std::string_view value) {
    if (detail::iequals(name, "set-cookie")) return add(name, value);  // §3.2.2's exception
    for (HttpHeader& f : fields) {
      if (!detail::iequals(f.name, name)) continue;
      f.value += detail::iequals(name, "cookie") ? "; " : ", ";
      f.value += value;
      return;
    }
    add(name, value);
  }
};

struct HttpRequest : HttpHeaders {
  std::string method;
  std::string target;  // as sent: "/chat?room=1"
  int minor_version = 1;

  // The path of the target, without the query ("/chat"); absolute-form targets are reduced.
  std::string_view path() const {
    std::string_view t = target;
    std::size_t scheme = t.find("://");
    if (!t.empty() && t[0] != '/' && scheme != std::string_view::npos) {
      t.remove_prefix(scheme + 3);
      std::size_t end = t.find_first_of("/?#");  // RFC 3986 §3.2: the authority ends here
      t = (end == std::string_view::npos || t[end] != '/') ? std::string_view("/") : t.substr(end);
    }
    return t.substr(0, t.find_first_of("?#"));
  }
  // The query without '?' ("room=1"), or empty.
  std::string_view query() const {
    std::string_view t = target;
    std::size_t q = t.find('?');
    if (q == std::string_view::npos) return {};
    t.remove_prefix(q + 1);
    return t.substr(0, t.find('#'));
  }
};

struct HttpResponse : HttpHeaders {
  int status = 0;
  std::string reason;
  std::string body;
  int minor_version = 1;
};

inline const char* http_reason(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace detail {

// "HTTP/1.x": returns x, or -1 for another syntax, -2 for another major version.
inline int parse_http_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9')
    return -1;
  return v[5] == '1' ? v[7] - '0' : -2;
}

// Visible characters only: no spaces, no controls (RFC 7230 §3.1.1 request-target).
inline bool is_visible(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F) return false;
  }
  return true;
}

// RFC 7230 §3.2 field-value: HTAB, SP, VCHAR, obs-text; no CR, LF, NUL or other controls.
inline bool is_field_value(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7F) return false;
  }
  return true;
}

// Start lines. Each returns 0 when well-formed, else the HTTP status that answers it.
inline int parse_start_line(std::string_view line, HttpRequest& m) {
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return 400;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  int minor = parse_http_version(line.substr(sp2 + 1));
  if (!is_token(method) || target.empty() || !is_visible(target) || minor == -1) return 400;
  if (minor < 0) return 505;
  m.method = method;
  m.target = target;
  m.minor_version = minor;
  return 0;
}

inline int parse_start_line(std::string_view line, HttpResponse& m) {
  // status-line = HTTP-version SP 3DIGIT SP reason-phrase (the reason may be empty)
  if (line.size() < 12 || line[8] != ' ') return 400;
  int minor = parse_http_version(line.substr(0, 8));
  if (minor < 0) return minor == -1 ? 400 : 505;
  std::string_view code = line.substr(9, 3);
  for (char c : code)
    if (c < '0' || c > '9') return 400;
  if (line.size() > 12 && line[12] != ' ') return 400;
  std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view();
  if (!is_field_value(reason)) return 400;
  m.minor_version = minor;
  m.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  m.reason = reason;
  return 0;
}

}  // namespace detail

// Incremental parser for a request head (server) or a response head (client). Bytes may
// arrive in any split; each limit has its own error. feed() stops at the end of the head and
// returns how many bytes it used: what follows belongs to the WebSocket frames.
template <class Message>
class HttpParser {
 public:
  explicit HttpParser(HttpLimits limits = {}) : limits_(limits) {}

  std::size_t feed(const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    std::size_t i = 0;
    while (i < size && !done_ && !error_) {
      const void* nl = std::memchr(p + i, '\n', size - i);
      std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - p) : size;
      std::size_t piece = end - i;
      // A line's limit counts its content; its CR and LF come on top.
      const std::size_t cap = limits_.max_line == SIZE_MAX ? SIZE_MAX : limits_.max_line + 1;
      if (line_.size() + piece > cap) {
        return i + fail(Errc::http_line_too_long,
                        "HTTP line longer than HttpLimits::max_line (WEBSOCKET_MAX_HTTP_LINE)",
                        have_start_ ? 431 : 414);
      }
      if (head_bytes_ + piece + (nl ? 1 : 0) > limits_.max_head) {
        return i + fail(Errc::http_head_too_large,
                        "HTTP head larger than HttpLimits::max_head (WEBSOCKET_MAX_HTTP_HEAD)", 431);
      }
      line_.append(p + i, piece);
      head_bytes_ += piece;
      i = end;
      if (!nl) break;
      ++i;
      ++head_bytes_;
      std::string_view line = line_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() > limits_.max_line) {  // a bare-LF line gets no byte for the CR
        return i + fail(Errc::http_line_too_long,
                        "HTTP line longer than HttpLimits::max_line (WEBSOCKET_MAX_HTTP_LINE)",
                        have_start_ ? 431 : 414);
      }
      take_line(line);
      line_.clear();
    }
    return i;
  }

  bool complete() const { return done_; }
  bool failed() const { return static_cast<bool>(error_); }
  const Error& error() const { return error_; }
  // The HTTP status that answers a failed request: 400, 414, 431 or 505.
  int error_status() const { return status_; }
  Message& message() { return message_; }
  const Message& message() const { return message_; }

 private:
  void take_line(std::string_view line) {
    if (!have_start_) {
      if (line.empty()) return;  // RFC 7230 §3.5: ignore empty lines before the start line
      if (int status = detail::parse_start_line(line, message_)) {
        fail(status == 505 ? Errc::http_version : Errc::http_malformed,
             status == 505 ? "HTTP version is not 1.x" : "malformed HTTP start line", status);
        return;
      }
      have_start_ = true;
      return;
    }
    if (line.empty()) {
      done_ = true;
      return;
    }
    if (++header_lines_ > limits_.max_headers) {
      fail(Errc::http_too_many_headers,
           "more HTTP headers than HttpLimits::max_headers (WEBSOCKET_MAX_HTTP_HEADERS)", 431);
      return;
    }
    // RFC 7230 §3.2.4: no whitespace before the colon; obsolete line folding is rejected.
    std::size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    if (colon == std::string_view::npos || !detail::is_token(name)) {
      fail(Errc::http_malformed, "malformed HTTP header line", 400);
      return;
    }
    std::string_view value = detail::trim(line.substr(colon + 1));
    if (!detail::is_field_value(value)) {
      fail(Errc::http_malformed, "control character in an HTTP header value", 400);
      return;
    }
    message_.combine(name, value);
  }

  std::size_t fail(Errc code, const char* text, int status) {
    error_ = Error(code, text);
    status_ = status;
    return 0;
  }

  HttpLimits limits_;
  Message message_;
  std::string line_;
  std::size_t head_bytes_ = 0;
  std::size_t header_lines_ = 0;
  bool have_start_ = false;
  bool done_ = false;
  Error error_;
  int status_ = 0;
};

using RequestParser = HttpParser<HttpRequest>;
using ResponseParser = HttpParser<HttpResponse>;

// ---- Serializers --------------------------------------------------------------------------

namespace detail {
inline void append_fields(std::string& out, const HttpHeaders& h) {
  for (const HttpHeader& f : h.fields) {
    out += f.name;
    out += ": ";
    out += f.value;
    out += "\r\n";
  }
}
}  // namespace detail

inline std::string serialize(const HttpRequest& r) {
  std::string out = r.method;
  out += ' ';
  out += r.target;
  out += " HTTP/1.";
  out += std::to_string(r.minor_version);
  out += "\r\n";
  detail::append_fields(out, r);
  out += "\r\n";
  return out;
}

// Adds Content-Length for a body (none for 1xx, 204, 304).
inline std::string serialize(const HttpResponse& r) {
  std::string out = "HTTP/1." + std::to_string(r.minor_version) + " " + std::to_string(r.status) +
                    " " + (r.reason.empty() ? http_reason(r.status) : r.reason) + "\r\n";
  detail::append_fields(out, r);
  bool bodiless = r.status < 200 || r.status == 204 || r.status == 304;
  if (!bodiless && !r.has("Content-Length"))
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "\r\n";
  if (!bodiless) out += r.body;
  return out;
}

// ---- Extensions header (RFC 6455 §9.1) ---------------------------------------------------

struct Extension {
  std::string name;
  std::vector<std::pair<std::string, std::string>> params;  // value "" when absent
};

// Parses "permessage-deflate; client_max_window_bits, x-foo; a=\"1\"" into names and
// parameters. Returns false on a syntax error.
inline bool parse_extensions(std::string_view s, std::vector<Extension>& out) {
  out.clear();
  std::size_t i = 0;
  auto skip_ows = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  };
  auto token = [&] {
    std::size_t start = i;
    while (i < s.size() && detail::is_tchar(s[i])) ++i;
    return s.substr(start, i - start);
  };
  while (true) {
    skip_ows();
    if (i < s.size() && s[i] == ',') {  // empty list elements are allowed (RFC 7230 §7)
      ++i;
      continue;
    }
    if (i == s.size()) return true;
    Extension ext;
    ext.name = token();
    if (ext.name.empty()) return false;
    skip_ows();
    while (i < s.size() && s[i] == ';') {
      ++i;
      skip_ows();
      std::string name(token());
      if (name.empty()) return false;
      std::string value;
      skip_ows();
      if (i < s.size() && s[i] == '=') {
        ++i;
        skip_ows();
        if (i < s.size() && s[i] == '"') {  // quoted-string, with backslash escapes
          for (++i; i < s.size() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && ++i == s.size()) return false;
            value += s[i];
          }
          if (i == s.size()) return false;
          ++i;
        } else {
          value = token();
        }
        if (value.empty()) return false;
      }
      ext.params.emplace_back(std::move(name), std::move(value));
      skip_ows();
    }
    out.push_back(std::move(ext));
    if (i < s.size() && s[i] != ',') return false;
  }
}

// ---- Server side of the opening handshake (RFC 6455 §4.2) ---------------------------------

// The first subprotocol the client lists that the server supports, or "".
inline std::string select_subprotocol(std::string_view offered,
                                      const std::vector<std::string>& supported) {
  std::string chosen;
  detail::for_each_list_item(offered, [&](std::string_view item) {
    if (!chosen.empty()) return;
    for (const std::string& s : supported)
      if (s == item) chosen = s;
  });
  return chosen;
}

namespace detail {
inline HttpResponse error_response(int status, const char* body) {
  HttpResponse r;
  r.status = status;
  r.add("Content-Type", "text/plain");
  r.add("Connection", "close");
  r.body = body;
  r.body += '\n';
  return r;
}

// RFC 6455 §4.1: the key is a base64-encoded 16-byte nonce: 22 digits, the last with its 4
// unused bits zero, then "==" (what base64_decode() accepts as 16 bytes, without decoding).
inline bool valid_client_key(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (std::size_t i = 0; i < 22; ++i)
    if (base64_value(key[i]) < 0) return false;
  return (base64_value(key[21]) & 15) == 0;
}
}  // namespace detail

// Checks an opening handshake (RFC 6455 §4.2.1) and prepares the answer: 101 with
// Sec-WebSocket-Accept (and the chosen subprotocol), or the error status with a short body.
inline HttpResponse answer_handshake(const HttpRequest& req,
                                     const std::vector<std::string>& subprotocols = {}) {
  using detail::error_response;
  if (req.method != "GET") {
    HttpResponse r = error_response(405, "Method Not Allowed: a WebSocket handshake is a GET");
    r.add("Allow", "GET");
    return r;
  }
  if (req.minor_version < 1) return error_response(400, "Bad Request: HTTP/1.1 or later required");
  // RFC 7230 §5.4: exactly one Host (the parser combines repeats into a list).
  if (!req.has("Host") || req.get("Host").find(',') != std::string_view::npos)
    return error_response(400, "Bad Request: missing or repeated Host header");
  if (!req.has_token("Upgrade", "websocket")) {
    HttpResponse r = error_response(426, "Upgrade Required: this is a WebSocket endpoint");
    r.fields[1].value = "Upgrade, close";
    r.add("Upgrade", "websocket");
    return r;
  }
  if (!req.has_token("Connection", "upgrade"))
    return error_response(400, "Bad Request: Connection header lacks \"Upgrade\"");
  // RFC 6455 §4.2.2: an unsupported version gets 426 with the versions we speak.
  if (detail::trim(req.get("Sec-WebSocket-Version")) != "13") {
    HttpResponse r = error_response(426, "Upgrade Required: Sec-WebSocket-Version must be 13");
    r.add("Sec-WebSocket-Version", "13");
    return r;
  }
  std::string_view key = detail::trim(req.get("Sec-WebSocket-Key"));
  if (!detail::valid_client_key(key))
    return error_response(400, "Bad Request: Sec-WebSocket-Key must be 16 bytes in base64");

  HttpResponse r;
  r.status = 101;
  r.add("Upgrade", "websocket");
  r.add("Connection", "Upgrade");
  r.add("Sec-WebSocket-Accept", accept_key(key));
  std::string protocol = select_subprotocol(req.get("Sec-WebSocket-Protocol"), subprotocols);
  if (!protocol.empty()) r.add("Sec-WebSocket-Protocol", protocol);
  // No extension is supported yet, so an offer in Sec-WebSocket-Extensions is declined by
  // leaving it out of the answer (RFC 6455 §9.1).
  return r;
}

// ---- Client side of the opening handshake (RFC 6455 §4.1) ---------------------------------

struct Url {
  bool secure = false;  // wss://
  std::string host;     // without brackets for an IPv6 literal
  std::uint16_t port = 80;
  std::string resource = "/";  // path and query
  bool ipv6_literal = false;

  // The Host header: the port only when it is not the default (RFC 7230 §5.4).
  std::string host_header() const {
    std::string h = ipv6_literal ? "[" : "";
    h += host;
    if (ipv6_literal) h += ']';
    if (port != (secure ? 443 : 80)) h += ':' + std::to_string(port);
    return h;
  }
};

// RFC 6455 §3: ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]; no fragment.
inline Error parse_url(std::string_view s, Url& url) {
  const Error bad(Errc::bad_url, "URL must look like ws://host[:port][/path][?query]");
  url = Url();
  std::size_t colon = s.find("://");
  if (colon == std::string_view::npos) return bad;
  std::string_view scheme = s.substr(0, colon);
  if (detail::iequals(scheme, "wss")) {
    url.secure = true;
    url.port = 443;
  } else if (!detail::iequals(scheme, "ws")) {
    return bad;
  }
  s.remove_prefix(colon + 3);
  if (s.find('#') != std::string_view::npos)
    return Error(Errc::bad_url, "a WebSocket URL must not have a #fragment (RFC 6455 §3)");
  std::size_t path_start = s.find_first_of("/?");
  std::string_view authority = s.substr(0, path_start);
  std::string_view rest = path_start == std::string_view::npos ? "" : s.substr(path_start);
  if (authority.find('@') != std::string_view::npos) return bad;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad;
    url.host = authority.substr(1, close - 1);
    url.ipv6_literal = true;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad;
      port = after.substr(1);
      has_port = true;
    }
    for (char c : url.host) {
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return bad;
    }
  } else {
    std::size_t pc = authority.find(':');
    url.host = authority.substr(0, pc);
    if (pc != std::string_view::npos) {
      port = authority.substr(pc + 1);
      has_port = true;
    }
    if (!detail::is_visible(url.host)) return bad;
  }
  if (url.host.empty()) return bad;
  if (has_port) {
    if (port.empty() || port.size() > 5) return bad;
    unsigned long n = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return bad;
      n = n * 10 + static_cast<unsigned long>(c - '0');
    }
    if (n == 0 || n > 65535) return bad;
    url.port = static_cast<std::uint16_t>(n);
  }
  if (!detail::is_visible(rest)) return bad;
  url.resource = rest.empty() || rest[0] == '?' ? "/" : "";  // "ws://h" and "ws://h?q" get a '/'
  url.resource += rest;
  return {};
}

// Builds the client's opening handshake (RFC 6455 §4.1). `key` is base64 of 16 random bytes.
inline Error make_handshake_request(const Url& url, std::string_view key,
                                    const std::vector<std::string>& subprotocols,
                                    const std::vector<HttpHeader>& extra_headers,
                                    HttpRequest& req) {
  req = HttpRequest();
  if (!detail::valid_client_key(key))  // also keeps CR/LF out of the header line
    return Error(Errc::bad_argument, "the key must be base64 of 16 bytes (RFC 6455 §4.1)");
  req.method = "GET";
  req.target = url.resource;
  req.add("Host", url.host_header());
  req.add("Upgrade", "websocket");
  req.add("Connection", "Upgrade");
  req.add("Sec-WebSocket-Key", key);
  req.add("Sec-WebSocket-Version", "13");
  std::string protocols;
  for (std::size_t i = 0; i < subprotocols.size(); ++i) {
    const std::string& p = subprotocols[i];
    if (!detail::is_token(p)) return Error(Errc::bad_argument, "a subprotocol must be an HTTP token");
    // RFC 6455 §4.1: the offered subprotocols "MUST all be unique strings".
    for (std::size_t j = 0; j < i; ++j)
      if (subprotocols[j] == p) return Error(Errc::bad_argument, "a subprotocol is offered twice");
    if (!protocols.empty()) protocols += ", ";
    protocols += p;
  }
  if (!protocols.empty()) req.add("Sec-WebSocket-Protocol", protocols);
  for (const HttpHeader& h : extra_headers) {
    // No header injection: names are tokens, values have no CR/LF.
    if (!detail::is_token(h.name) || !detail::is_field_value(h.value))
      return Error(Errc::bad_argument, "an extra header has a bad name or a CR/LF in its value");
    req.add(h.name, h.value);
  }
  return {};
}

// Checks the server's answer (RFC 6455 §4.1, the client MUST _Fail_ rules). On success
// `subprotocol` holds the one the server chose ("" for none).
inline Error check_handshake_response(const HttpResponse& r, std::string_view key,
                                      const std::vector<std::string>& offered_subprotocols,
                                      std::string& subprotocol) {
  auto failed = [](const char* why) { return Error(Errc::handshake_failed, why); };
  subprotocol.clear();
  if (r.status != 101) return failed("server did not answer 101 Switching Protocols");
  if (!detail::iequals(detail::trim(r.get("Upgrade")), "websocket"))
    return failed("server response lacks \"Upgrade: websocket\"");
  if (!r.has_token("Connection", "upgrade"))
    return failed("server response lacks \"Connection: Upgrade\"");
  if (detail::trim(r.get("Sec-WebSocket-Accept")) != accept_key(key))
    return failed("server sent a wrong Sec-WebSocket-Accept");
  // We offer no extension, so any extension in the answer (any non-empty list element, well
  // formed or not) was not offered.
  bool extension = false;
  detail::for_each_list_item(r.get("Sec-WebSocket-Extensions"),
                             [&](std::string_view) { extension = true; });
  if (extension) return failed("server chose an extension that was not offered");
  if (const std::string* p = r.find("Sec-WebSocket-Protocol")) {
    std::string_view chosen = detail::trim(*p);
    bool was_offered = false;
    for (const std::string& o : offered_subprotocols)
      if (o == chosen) was_offered = true;
    if (!was_offered) return failed("server chose a subprotocol that was not offered");
    subprotocol = chosen;
  }
  return {};
}

// =====================================================================================
// ==== §2 Frame codec (RFC 6455 §5.2) ====                                       >>frame
// =====================================================================================
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-------+-+-------------+-------------------------------+
//   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//   | |1|2|3|       |K|             |                               |
//   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//   |  Extended payload length continued, if payload len == 127     |
//   + - - - - - - - - - - - - - - - +-------------------------------+
//   |                               | Masking-key, if MASK set to 1 |
//   +-------------------------------+-------------------------------+
//   | Masking-key (continued)       |          Payload Data         |
//   +-------------------------------- - - - - - - - - - - - - - - - +

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// RFC 6455 §5.5: control frames are those whose opcode has the high bit set.
constexpr bool is_control(std::uint8_t opcode) { return (opcode & 0x8) != 0; }
// §5.2: 0x3-0x7 and 0xB-0xF are reserved.
constexpr bool is_known_opcode(std::uint8_t opcode) {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

struct FrameHeader {
  bool fin = true;
  std::uint8_t rsv = 0;     // RSV1..RSV3 as bits 2..0 (RSV1 = 4)
  std::uint8_t opcode = 0;  // the raw 4 bits, so reserved values can be seen and rejected
  bool masked = false;
  std::array<std::uint8_t, 4> mask{};
  std::uint64_t length = 0;
};

constexpr std::size_t kMaxFrameHeader = 14;

// Writes the header with the length in its minimal form (§5.2: "the minimal number of bytes
// MUST be used to encode the length"). Returns its size, 2..14. `length` must be < 2^63.
inline std::size_t encode_frame_header(const FrameHeader& h, std::uint8_t* out) {
  out[0] = static_cast<std::uint8_t>((h.fin ? 0x80 : 0) | ((h.rsv & 7) << 4) | (h.opcode & 0xF));
  const std::uint8_t mask_bit = h.masked ? 0x80 : 0;
  std::size_t n = 2;
  if (h.length < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | h.length);
  } else if (h.length <= 0xFFFF) {
    out[1] = static_cast<std::uint8_t>(mask_bit | 126);
    detail::store_be16(out + 2, static_cast<std::uint16_t>(h.length));
    n = 4;
  } else {
    out[1] = static_cast<std::uint8_t>(mask_bit | 127);
    detail::store_be64(out + 2, h.length);
    n = 10;
  }
  if (h.masked) {
    std::memcpy(out + n, h.mask.data(), 4);
    n += 4;
  }
  return n;
}

// Decodes a header at the start of [p, p + size). Returns its size (2..14) once complete,
// 0 when more bytes are needed, -1 when the length is malformed: a 64-bit length with the
// most significant bit set (§5.2), or a length not in its minimal form.
inline int decode_frame_header(const std::uint8_t* p, std::size_t size, FrameHeader& h) {
  if (size < 2) return 0;
  const unsigned len7 = p[1] & 0x7Fu;
  const bool masked = (p[1] & 0x80) != 0;
  const std::size_t need = 2u + (len7 == 126 ? 2u : len7 == 127 ? 8u : 0u) + (masked ? 4u : 0u);
  if (size < need) return 0;
  h.fin = (p[0] & 0x80) != 0;
  h.rsv = static_cast<std::uint8_t>((p[0] >> 4) & 7);
  h.opcode = static_cast<std::uint8_t>(p[0] & 0xF);
  h.masked = masked;
  std::size_t pos = 2;
  if (len7 == 126) {
    h.length = detail::load_be16(p + 2);
    if (h.length < 126) return -1;
    pos = 4;
  } else if (len7 == 127) {
    h.length = detail::load_be64(p + 2);
    if ((h.length >> 63) != 0 || h.length <= 0xFFFF) return -1;
    pos = 10;
  } else {
    h.length = len7;
  }
  if (masked) std::memcpy(h.mask.data(), p + pos, 4);
  return static_cast<int>(need);
}

// §5.3: XORs data with the masking key; `offset` is the position of data[0] within the
// frame payload, so a payload can be (un)masked in place, in pieces. 64 bytes at a time.
inline void apply_mask(std::uint8_t* data, std::size_t size, const std::uint8_t* key,
                       std::size_t offset = 0) {
  const std::uint8_t k[8] = {key[offset & 3],       key[(offset + 1) & 3], key[(offset + 2) & 3],
                             key[(offset + 3) & 3], key[offset & 3],       key[(offset + 1) & 3],
                             key[(offset + 2) & 3], key[(offset + 3) & 3]};
  std::uint64_t kw;
  std::memcpy(&kw, k, 8);  // the key in memory order, whatever the byte order
  auto x8 = [kw](std::uint8_t* q) {
    std::uint64_t w;
    std::memcpy(&w, q, 8);
    w ^= kw;
    std::memcpy(q, &w, 8);
  };
  std::size_t i = 0;
  // 64 bytes a step as independent words (compilers turn them into vector ops). No array
  // temporary: GCC 12 spilled one to the stack on every step, doubling the stores.
  for (; i + 64 <= size; i += 64) {
    std::uint8_t* q = data + i;
    x8(q), x8(q + 8), x8(q + 16), x8(q + 24), x8(q + 32), x8(q + 40), x8(q + 48), x8(q + 56);
  }
  for (; i + 8 <= size; i += 8) x8(data + i);
  for (; i < size; ++i) data[i] ^= key[(offset + i) & 3];  // not k[]: that would keep k in memory
}

// =====================================================================================
// ==== §3 Connection (RFC 6455 §5, §6, §7) ====                             >>connection
// =====================================================================================
//
// A sans-I/O state machine. The driver gives it the bytes it read, receive() turns them into
// events; send_*() and close() append bytes to an output buffer the driver writes out.
//
//   handshake --(101 sent / received)--> open --(close sent)--> closing --(close received)--> closed
//                                          \----------(close received, answered)--------------/
//
// Every connection that emitted `open` ends with exactly one `close` event.

enum class Role : std::uint8_t { client, server };

enum class EventType : std::uint8_t { open, text, binary, ping, pong, close };

struct Event {
  EventType type = EventType::open;
  // text/binary: the message (or, when streaming, this piece of it); ping/pong: the payload;
  // close: the reason; open: the subprotocol. Valid only during the callback.
  std::string_view data;
  bool fin = true;         // streaming: false while more pieces of this message follow
  std::uint16_t code = 0;  // close: the peer's code (1005 if it sent none), or the code we failed with
};

struct Limits {
  std::size_t max_message = WEBSOCKET_MAX_MESSAGE;          // whole message, all fragments
  std::size_t max_frame = WEBSOCKET_MAX_MESSAGE;            // one frame's payload
  std::size_t max_send_buffer = WEBSOCKET_MAX_SEND_BUFFER;  // bytes queued, not yet written
  HttpLimits http;
};

struct ConnectionOptions {
  Limits limits;
  bool auto_pong = true;          // answer each ping with a pong
  bool stream_fragments = false;  // deliver data as it arrives (Event::fin ends the message)
  std::vector<std::string> subprotocols;  // client: offered, in order; server: supported
  std::vector<HttpHeader> headers;        // client: extra request headers, e.g. Authorization
  // Server: sees the request and the prepared answer (101, or the error status of a request
  // that is not a valid upgrade) and may change it: reject with a status and body, add
  // headers, pick another Sec-WebSocket-Protocol, or serve a plain HTTP response.
  std::function<void(const HttpRequest&, HttpResponse&)> on_handshake;
};

// RFC 6455 §7.4: the codes an endpoint may put in a close frame.
constexpr bool is_valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

namespace detail {
// What accessors return for a part a connection does not have (or no longer keeps).
inline const std::string& empty_string() {
  static const std::string none;
  return none;
}
inline const HttpRequest& empty_request() {
  static const HttpRequest none;
  return none;
}
}  // namespace detail

class Connection {
 public:
  enum class State : std::uint8_t { handshake, open, closing, closed };

  explicit Connection(Role role, ConnectionOptions options = {})
      : Connection(role, std::make_shared<const ConnectionOptions>(std::move(options))) {}
  // Connections with the same options (a server's) can share one copy.
  Connection(Role role, std::shared_ptr<const ConnectionOptions> options)
      : Connection(role, std::move(options),
                   role == Role::server ? &Connection::receive_request : &Connection::receive_response) {}

  // ---- opening handshake ----

  // Client: queues the opening handshake for `url` (ws://host[:port][/path][?query]).
  Error start_client(std::string_view url) {
    Url u;
    if (Error e = parse_url(url, u)) return e;
    return start_client(u);
  }
  Error start_client(const Url& url) {
    if (role_ != Role::client || state_ != State::handshake || !hs_ || !hs_->key.empty())
      return Error(Errc::bad_argument, "start_client() is for a new client connection");
    std::uint8_t nonce[16];
    if (!random_bytes(nonce, sizeof nonce))
      return Error(Errc::random_failed, "the OS random generator failed");
    hs_->key = base64_encode(nonce, sizeof nonce);
    HttpRequest req;
    if (Error e = make_handshake_request(url, hs_->key, opt_->subprotocols, opt_->headers, req)) return e;
    traffic().out += serialize(req);
    return {};
  }

  // Skips the opening handshake, for a connection whose handshake was done elsewhere.
  void assume_open() {
    if (state_ != State::handshake) return;
    hs_.reset();
    state_ = State::open;
  }

  // ---- bytes in, events out ----

  // Feeds bytes read from the peer and calls on_event(const ws::Event&) for each event.
  // Frames are unmasked in place in `data`, and events may point into it. Returns the bytes
  // used: all of them, unless the connection closed (the rest is then meaningless) or the
  // handler returned false to pause after an event (call again with the rest).
  template <class OnEvent>
  std::size_t receive(void* data, std::size_t size, OnEvent&& on_event) {
    struct Receiving {  // release_memory() from the handler frees nothing in use meanwhile
      bool& flag;
      explicit Receiving(bool& f) : flag(f) { flag = true; }
      ~Receiving() { flag = false; }
    } receiving(receiving_);
    auto* p = static_cast<std::uint8_t*>(data);
    std::size_t used = 0;
    paused_ = false;
    if (state_ == State::handshake) used = receive_handshake(p, size, on_event);
    if (paused_ || used == size || (state_ != State::open && state_ != State::closing)) return used;
    Traffic& t = traffic();
    while (used < size && !paused_ && (state_ == State::open || state_ == State::closing)) {
      if (t.in_frame)
        used += receive_payload(t, p + used, size - used, on_event);
      else
        used += receive_header(t, p + used, size - used, on_event);
    }
    return used;
  }

  // The peer closed its side of the TCP connection. Without a close handshake, that is an
  // abnormal closure (1006).
  template <class OnEvent>
  void receive_eof(OnEvent&& on_event) {
    if (state_ == State::handshake) {
      state_ = State::closed;
      error_ = Error(Errc::handshake_failed, "connection closed during the opening handshake");
    } else if (state_ != State::closed) {
      state_ = State::closed;
      error_ = Error(Errc::protocol_error, "connection closed without a close frame");
      emit(on_event, EventType::close, "connection closed without a close frame", true,
           close_code::abnormal);
    }
  }

  // ---- events in, bytes out ----

  Error send_text(std::string_view text) {
    if (Error e = check_can_send(text.size())) return e;
    if (!is_valid_utf8(text))
      return Error(Errc::invalid_utf8, "send_text() needs valid UTF-8; use send_binary() for bytes");
    return send_message(Opcode::text, text.data(), text.size());
  }
  Error send_binary(std::string_view data) { return send_binary(data.data(), data.size()); }
  Error send_binary(const void* data, std::size_t size) {
    return send_message(Opcode::binary, data, size);
  }

  // Sends one fragment of a message (RFC 6455 §5.4). The first call says text or binary, the
  // next ones continue that message, the one with fin = true ends it. Control frames and
  // nothing else may be sent in between.
  Error send_fragment(Opcode type, std::string_view data, bool fin) {
    if (Error e = check_can_send(data.size())) return e;
    if (type != Opcode::text && type != Opcode::binary)
      return Error(Errc::bad_argument, "send_fragment() sends text or binary");
    if (sending_fragments_ && type != sending_type_)
      return Error(Errc::bad_argument, "send_fragment(): the message in progress has another type");
    if (type == Opcode::text) {
      // Check a copy: a rejected fragment is not sent, so it must not change the state.
      Utf8Validator utf8 = sending_fragments_ ? send_utf8_ : Utf8Validator();
      if (!utf8.feed(data.data(), data.size()) || (fin && !utf8.complete()))
        return Error(Errc::invalid_utf8, "send_fragment(): invalid UTF-8 in a text message");
      send_utf8_ = utf8;
    }
    auto opcode = static_cast<std::uint8_t>(sending_fragments_ ? Opcode::continuation : type);
    sending_fragments_ = !fin;
    sending_type_ = type;
    return write_frame(opcode, fin, data.data(), data.size());
  }

  Error ping(std::string_view payload = {}) { return send_control(Opcode::ping, payload); }
  Error pong(std::string_view payload = {}) { return send_control(Opcode::pong, payload); }

  // Starts the closing handshake (RFC 6455 §7.1.2). Code 1005 sends a close frame without a
  // code. The connection is closed once the peer answers (or the driver's timeout hits).
  Error close(std::uint16_t code = close_code::normal, std::string_view reason = {}) {
    if (state_ == State::handshake) {  // nothing was established: just drop it
      state_ = State::closed;
      return {};
    }
    if (state_ != State::open) return Error(Errc::not_open, "close() after a close was sent or received");
    if (code == close_code::no_status ? !reason.empty() : !is_valid_close_code(code))
      return Error(Errc::invalid_close, "close code must be 1000-1003, 1007-1014 or 3000-4999");
    // §5.5: a control payload is at most 125 bytes, the code takes 2 of them.
    if (reason.size() > 123 || !is_valid_utf8(reason))
      return Error(Errc::invalid_close, "close reason must be valid UTF-8 of at most 123 bytes");
    write_close(code, reason);
    state_ = State::closing;
    return {};
  }

  // ---- output buffer: the driver writes pending_output() and reports what it wrote ----

  std::string_view pending_output() const {
    return t_ ? std::string_view(t_->out).substr(t_->out_pos) : std::string_view();
  }
  void consume_output(std::size_t n) {
    if (!t_) return;
    t_->out_pos += n < buffered_amount() ? n : buffered_amount();
    if (t_->out_pos == t_->out.size()) {
      t_->out.clear();
      t_->out_pos = 0;
    }
  }
  std::size_t buffered_amount() const { return t_ ? t_->out.size() - t_->out_pos : 0; }

  // Frees what a connection does not need while it rests: the buffers (they keep their size
  // while traffic flows) and, once open, the opening handshake, request() included. Drivers
  // call this when a connection has opened or has been quiet for a while, so that an idle
  // connection costs little. From inside receive()'s handler it frees nothing.
  void release_memory() {
    if (receiving_) return;
    if (state_ != State::handshake) hs_.reset();
    if (!t_) return;
    if (t_->at_rest()) return t_.reset();
    if (!t_->in_message) std::string().swap(t_->message);
    if (t_->out_pos == t_->out.size()) {
      std::string().swap(t_->out);
      t_->out_pos = 0;
    }
  }

  // In an on_event callback for a text or binary message that the connection assembled in
  // its own buffer (it came in pieces): swaps that buffer with `into` and returns true, so the
  // message is kept without a copy. False when e.data points into the caller's bytes.
  bool take_message(std::string& into) {
    if (!t_ || !t_->assembled) return false;
    t_->assembled = false;
    into.swap(t_->message);
    return true;
  }

  // ---- state ----

  State state() const { return state_; }
  Role role() const { return role_; }
  const std::string& subprotocol() const { return subprotocol_ ? *subprotocol_ : detail::empty_string(); }
  // Server: the opening handshake's request, until release_memory() (a Server releases it
  // when on_open returns).
  const HttpRequest& request() const { return hs_ ? hs_->request : detail::empty_request(); }
  const Error& error() const { return error_; }  // why it failed, if it did
  const ConnectionOptions& options() const { return *opt_; }

 private:
  // ---- handshake ----

  // Each side of the opening handshake is reached through a pointer set at construction.
  // Client and Session name their side, not the role, so a program that is only a client (or
  // only a server) does not link the other side's parser, checks and serializer. (Session
  // also sends text it knows is valid: Session::send_valid.)
  friend class Client;
  friend class Session;
  using ReceiveHandshake = std::size_t (Connection::*)(std::uint8_t*, std::size_t);

  // What a connection keeps is split by how long it is needed, so that an open connection at
  // rest (no frame or message in progress, nothing to send) costs little: this part always,
  // the handshake's state until release_memory(), the traffic state while bytes move.
  struct Handshake {
    ReceiveHandshake receive;  // receive_request or receive_response
    std::unique_ptr<RequestParser> request_parser;  // until the head is complete
    std::unique_ptr<ResponseParser> response_parser;
    std::string key;      // client: our Sec-WebSocket-Key, until the answer
    HttpRequest request;  // server: the opening request
  };
  struct MaskPool {  // client: masking keys from the OS CSPRNG, fetched 64 bytes at a time
    std::uint8_t bytes[64];
    std::size_t used = sizeof bytes;
  };
  struct Traffic {
    // receiving
    FrameHeader frame;
    std::uint64_t frame_left = 0;  // payload bytes of the frame still to come
    std::uint64_t message_size = 0;
    std::uint8_t header_buf[kMaxFrameHeader] = {};
    std::uint8_t header_size = 0;  // bytes of a split header held in header_buf
    bool in_frame = false;         // reading a frame's payload
    bool in_message = false;       // between the first and the final frame of a data message
    bool assembled = false;        // emitting message: take_message() may have it
    EventType message_type = EventType::binary;
    Utf8Validator utf8;
    std::string message;  // fragments of the message so far (unless streaming)
    std::string control;  // a control frame split across reads
    // sending
    std::string out;
    std::size_t out_pos = 0;  // out[0, out_pos) was written already
    std::unique_ptr<MaskPool> masks;  // client

    bool at_rest() const { return !in_frame && !in_message && header_size == 0 && out_pos == out.size(); }
  };
  static constexpr std::size_t kReserveMax = 1 << 20;

  Connection(Role role, std::shared_ptr<const ConnectionOptions> options, ReceiveHandshake handshake)
      : role_(role), opt_(std::move(options)), hs_(new Handshake) {
    hs_->receive = handshake;
  }

  template <class OnEvent>
  std::size_t receive_handshake(std::uint8_t* p, std::size_t size, OnEvent& on_event) {
    if (!hs_) return 0;  // a moved-from connection
    std::size_t used = (this->*hs_->receive)(p, size);
    if (state_ == State::open) emit(on_event, EventType::open, subprotocol());
    return used;
  }

  std::size_t receive_request(std::uint8_t* p, std::size_t size) {
    Handshake& hs = *hs_;
    if (!hs.request_parser) hs.request_parser.reset(new RequestParser(opt_->limits.http));
    RequestParser& parser = *hs.request_parser;
    std::size_t used = parser.feed(p, size);
    if (parser.failed()) {
      int status = parser.error_status();
      traffic().out += serialize(detail::error_response(status, http_reason(status)));
      return end_handshake(parser.error(), size);
    }
    if (!parser.complete()) return used;
    HttpRequest& request = hs.request;
    request = std::move(parser.message());
    HttpResponse answer = answer_handshake(request, opt_->subprotocols);
    if (opt_->on_handshake) opt_->on_handshake(request, answer);
    // §4.2.2: the subprotocol "MUST be derived from the client's handshake"; a hook that picks
    // one the client did not offer would make the client fail anyway (§4.1), so say it here.
    if (const std::string* chosen = answer.status == 101 ? answer.find("Sec-WebSocket-Protocol") : nullptr) {
      bool offered = false;
      detail::for_each_list_item(request.get("Sec-WebSocket-Protocol"),
                                 [&](std::string_view item) { offered = offered || item == *chosen; });
      if (!offered)
        answer = detail::error_response(500, "Internal Server Error: the chosen subprotocol was not offered");
    }
    if (answer.status != 101 && !answer.has("Connection")) answer.add("Connection", "close");
    traffic().out += serialize(answer);
    if (answer.status != 101)
      return end_handshake(Error(Errc::handshake_rejected, "request was not accepted as a WebSocket upgrade"), size);
    open(answer.get("Sec-WebSocket-Protocol"));
    return used;
  }

  std::size_t receive_response(std::uint8_t* p, std::size_t size) {
    Handshake& hs = *hs_;
    if (!hs.response_parser) hs.response_parser.reset(new ResponseParser(opt_->limits.http));
    ResponseParser& parser = *hs.response_parser;
    std::size_t used = parser.feed(p, size);
    if (parser.failed()) return end_handshake(parser.error(), size);
    if (!parser.complete()) return used;
    std::string subprotocol;
    if (Error e = check_handshake_response(parser.message(), hs.key, opt_->subprotocols, subprotocol))
      return end_handshake(e, size);
    open(subprotocol);
    return used;
  }

  void open(std::string_view subprotocol) {  // receive_handshake() then emits the open event
    hs_->request_parser.reset();
    hs_->response_parser.reset();
    hs_->key.clear();
    if (!subprotocol.empty()) subprotocol_.reset(new std::string(subprotocol));
    state_ = State::open;
  }

  std::size_t end_handshake(const Error& e, std::size_t size) {
    error_ = e;  // before the reset: `e` may be the parser's own error
    hs_->request_parser.reset();
    hs_->response_parser.reset();
    state_ = State::closed;
    return size;
  }

  // ---- frames ----

  template <class OnEvent>
  std::size_t receive_header(Traffic& t, std::uint8_t* p, std::size_t size, OnEvent& on_event) {
    int n;
    std::size_t used;
    if (t.header_size == 0) {  // the usual case: the whole header is in this read
      n = decode_frame_header(p, size, t.frame);
      if (n == 0) {
        std::memcpy(t.header_buf, p, size);  // size < 14 here
        t.header_size = static_cast<std::uint8_t>(size);
        return size;
      }
      used = n < 0 ? size : static_cast<std::size_t>(n);
    } else {  // the header was split across reads: complete it in header_buf
      std::size_t take = kMaxFrameHeader - t.header_size < size ? kMaxFrameHeader - t.header_size : size;
      std::memcpy(t.header_buf + t.header_size, p, take);
      n = decode_frame_header(t.header_buf, t.header_size + take, t.frame);
      if (n == 0) {
        t.header_size = static_cast<std::uint8_t>(t.header_size + take);
        return take;
      }
      used = n < 0 ? size : static_cast<std::size_t>(n) - t.header_size;
      t.header_size = 0;
    }
    if (n < 0) return fail(close_code::protocol_error, "frame length not in minimal form or over 2^63", on_event, size);
    if (!check_frame(t, on_event)) return size;
    t.in_frame = true;
    t.frame_left = t.frame.length;
    if (t.frame_left == 0) take_payload(t, p + used, 0, on_event);
    return used;
  }

  // The frame-level MUSTs of RFC 6455 §5, checked before any payload byte is read.
  template <class OnEvent>
  bool check_frame(Traffic& t, OnEvent& on_event) {
    const FrameHeader& h = t.frame;
    const std::uint16_t kProtocol = close_code::protocol_error;
    // §5.2: RSV bits MUST be 0 unless an extension that defines them was negotiated.
    if (h.rsv != 0) return reject(kProtocol, "RSV bit set without a negotiated extension", on_event);
    // §5.2: a reserved opcode MUST fail the connection.
    if (!is_known_opcode(h.opcode)) return reject(kProtocol, "reserved opcode", on_event);
    // §5.1: a server MUST close on an unmasked frame, a client MUST close on a masked frame.
    if (role_ == Role::server && !h.masked) return reject(kProtocol, "client frame not masked", on_event);
    if (role_ == Role::client && h.masked) return reject(kProtocol, "server frame masked", on_event);
    if (is_control(h.opcode)) {
      // §5.5: control frames MUST have a payload of 125 bytes or less, MUST NOT be fragmented.
      if (h.length > 125) return reject(kProtocol, "control frame payload over 125 bytes", on_event);
      if (!h.fin) return reject(kProtocol, "fragmented control frame", on_event);
      return true;
    }
    // §5.4: continuation frames continue a fragmented message; a new message cannot start
    // inside one.
    if (h.opcode == 0 && !t.in_message) return reject(kProtocol, "continuation frame without a message", on_event);
    if (h.opcode != 0 && t.in_message) return reject(kProtocol, "new message inside a fragmented message", on_event);
    // §10.4: limits on frame and message size; beyond them the answer is 1009.
    if (h.length > opt_->limits.max_frame)
      return reject(close_code::message_too_big, "frame larger than Limits::max_frame (WEBSOCKET_MAX_MESSAGE)", on_event);
    if (h.opcode != 0) {
      t.in_message = true;
      t.message_type = h.opcode == 1 ? EventType::text : EventType::binary;
      t.message_size = 0;
      t.utf8.reset();
    }
    if (h.length > opt_->limits.max_message - t.message_size)
      return reject(close_code::message_too_big, "message larger than Limits::max_message (WEBSOCKET_MAX_MESSAGE)", on_event);
    t.message_size += h.length;
    return true;
  }

  template <class OnEvent>
  std::size_t receive_payload(Traffic& t, std::uint8_t* p, std::size_t size, OnEvent& on_event) {
    std::size_t n = t.frame_left < size ? static_cast<std::size_t>(t.frame_left) : size;
    take_payload(t, p, n, on_event);
    return n;
  }

  // A piece of the current frame's payload: unmask it in place, then act on it.
  template <class OnEvent>
  void take_payload(Traffic& t, std::uint8_t* p, std::size_t n, OnEvent& on_event) {
    const std::uint64_t offset = t.frame.length - t.frame_left;  // of p in the payload
    if (t.frame.masked) apply_mask(p, n, t.frame.mask.data(), static_cast<std::size_t>(offset & 3));
    const bool whole_frame = offset == 0 && n == t.frame.length;
    t.frame_left -= n;
    const bool frame_done = t.frame_left == 0;
    if (frame_done) t.in_frame = false;
    std::string_view piece(reinterpret_cast<const char*>(p), n);
    if (!is_control(t.frame.opcode)) return take_data(t, piece, whole_frame, frame_done, on_event);
    if (whole_frame) return take_control(t.frame.opcode, piece, on_event);
    t.control.append(piece);  // a control frame split across reads (at most 125 bytes)
    if (!frame_done) return;
    std::string payload;
    payload.swap(t.control);
    take_control(t.frame.opcode, payload, on_event);
  }

  template <class OnEvent>
  void take_data(Traffic& t, std::string_view piece, bool whole_frame, bool frame_done, OnEvent& on_event) {
    const bool text = t.message_type == EventType::text;
    // §8.1: text MUST be valid UTF-8; fail at the first bad byte, not at the message's end.
    if (text && !t.utf8.feed(piece.data(), piece.size()))
      return void(fail(close_code::invalid_payload, "invalid UTF-8 in a text message", on_event));
    const bool message_done = frame_done && t.frame.fin;
    if (message_done && text && !t.utf8.complete())
      return void(fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence", on_event));
    if (message_done) t.in_message = false;
    if (opt_->stream_fragments) {
      if (!piece.empty() || message_done) emit(on_event, t.message_type, piece, message_done);
      return;
    }
    if (message_done && whole_frame && t.frame.opcode != 0)  // one frame, one read: no copy
      return emit(on_event, t.message_type, piece);
    // A message's first frame tells how much to hold: one allocation, no regrowth (up to
    // kReserveMax, so a peer that only announces a big frame does not get memory for it).
    if (t.message.empty() && t.frame.opcode != 0)
      t.message.reserve(static_cast<std::size_t>(t.frame.length < kReserveMax ? t.frame.length : kReserveMax));
    t.message.append(piece);
    if (!message_done) return;
    t.assembled = true;
    emit(on_event, t.message_type, t.message);
    t.assembled = false;
    t.message.clear();
  }

  template <class OnEvent>
  void take_control(std::uint8_t opcode, std::string_view payload, OnEvent& on_event) {
    if (opcode == static_cast<std::uint8_t>(Opcode::ping)) {
      emit(on_event, EventType::ping, payload);
      // §5.5.2: a ping is answered with a pong carrying the same payload. When the send
      // buffer is full, a pong is skipped: §5.5.3 allows answering only the latest ping.
      if (opt_->auto_pong && !check_can_send(payload.size()))
        write_frame(static_cast<std::uint8_t>(Opcode::pong), true, payload.data(), payload.size(), false);
    } else if (opcode == static_cast<std::uint8_t>(Opcode::pong)) {
      emit(on_event, EventType::pong, payload);
    } else {
      take_close(payload, on_event);
    }
  }

  template <class OnEvent>
  void take_close(std::string_view payload, OnEvent& on_event) {
    std::uint16_t code = close_code::no_status;
    std::string_view reason;
    // §5.5.1: a close body, if any, starts with a 2-byte code, then UTF-8 text.
    if (payload.size() == 1)
      return void(fail(close_code::protocol_error, "close frame with a 1-byte payload", on_event));
    if (payload.size() >= 2) {
      code = detail::load_be16(reinterpret_cast<const std::uint8_t*>(payload.data()));
      reason = payload.substr(2);
      if (!is_valid_close_code(code))
        return void(fail(close_code::protocol_error, "invalid close code", on_event));
      if (!is_valid_utf8(reason))
        return void(fail(close_code::invalid_payload, "close reason is not valid UTF-8", on_event));
    }
    // §5.5.1: answer a close with a close (echoing the code), unless we sent one already.
    if (!close_sent_) write_close(code, {});
    state_ = State::closed;
    emit(on_event, EventType::close, reason, true, code);
  }

  // fail() for check_frame(): false means "the frame was rejected".
  template <class OnEvent>
  bool reject(std::uint16_t code, const char* why, OnEvent& on_event) {
    fail(code, why, on_event);
    return false;
  }

  // _Fail the WebSocket Connection_ (§7.1.7): send a close with the code, stop reading.
  template <class OnEvent>
  std::size_t fail(std::uint16_t code, const char* why, OnEvent& on_event, std::size_t result = 0) {
    error_ = Error(code == close_code::invalid_payload ? Errc::invalid_payload
                   : code == close_code::message_too_big ? Errc::message_too_big
                                                           : Errc::protocol_error,
                   why);
    if (!close_sent_) write_close(code, why);
    state_ = State::closed;
    if (t_) t_->in_frame = false;
    emit(on_event, EventType::close, why, true, code);
    return result;
  }

  template <class OnEvent>
  void emit(OnEvent& on_event, EventType type, std::string_view data, bool fin = true,
            std::uint16_t code = 0) {
    Event e;
    e.type = type;
    e.data = data;
    e.fin = fin;
    e.code = code;
    // A handler that returns false pauses receive() right after this event.
    if constexpr (std::is_same<decltype(on_event(static_cast<const Event&>(e))), bool>::value)
      paused_ = !on_event(static_cast<const Event&>(e));
    else
      on_event(static_cast<const Event&>(e));
  }

  // ---- sending ----

  Error check_can_send(std::size_t size) const {
    if (state_ != State::open)
      return Error(Errc::not_open, "the connection is not open (handshake pending or closing)");
    const std::size_t limit = opt_->limits.max_send_buffer;
    if (buffered_amount() > limit || size + kMaxFrameHeader > limit - buffered_amount())
      return Error(Errc::send_buffer_full,
                   "send buffer full: wait for buffered_amount() to drop, or raise "
                   "Limits::max_send_buffer (WEBSOCKET_MAX_SEND_BUFFER)");
    return {};
  }

  Error send_message(Opcode type, const void* data, std::size_t size) {
    if (Error e = check_can_send(size)) return e;
    if (sending_fragments_)
      return Error(Errc::bad_argument, "a fragmented message is in progress: end it with send_fragment(..., true)");
    return write_frame(static_cast<std::uint8_t>(type), true, data, size);
  }

  Error send_control(Opcode type, std::string_view payload) {
    if (payload.size() > 125)  // §5.5
      return Error(Errc::control_too_big, "ping/pong payload must be at most 125 bytes");
    if (Error e = check_can_send(payload.size())) return e;
    return write_frame(static_cast<std::uint8_t>(type), true, payload.data(), payload.size());
  }

  void write_close(std::uint16_t code, std::string_view reason) {
    std::uint8_t body[125] = {};
    std::size_t n = 0;
    if (code != close_code::no_status) {
      detail::store_be16(body, code);
      n = 2 + (reason.size() > 123 ? 123 : reason.size());
      if (n > 2) std::memcpy(body + 2, reason.data(), n - 2);
    }
    write_frame(static_cast<std::uint8_t>(Opcode::close), true, body, n, false);
    close_sent_ = true;  // §5.5.1: after a close, nothing more is sent
  }

  Error write_frame(std::uint8_t opcode, bool fin, const void* data, std::size_t size, bool = true) {
    FrameHeader h;
    h.fin = fin;
    h.opcode = opcode;
    h.length = size;
    // §5.3: a client masks every frame with a fresh, unpredictable key.
    h.masked = role_ == Role::client;
    Traffic& t = traffic();
    if (h.masked && !next_mask(t, h.mask))
      return Error(Errc::random_failed, "the OS random generator failed");
    if (t.out_pos > 0 && t.out_pos >= t.out.size() / 2) {  // reclaim what was written
      t.out.erase(0, t.out_pos);
      t.out_pos = 0;
    }
    std::uint8_t head[kMaxFrameHeader];
    std::size_t head_size = encode_frame_header(h, head);
    std::size_t start = t.out.size() + head_size;
    t.out.append(reinterpret_cast<const char*>(head), head_size);
    t.out.append(static_cast<const char*>(data), size);
    if (h.masked) apply_mask(reinterpret_cast<std::uint8_t*>(&t.out[start]), size, h.mask.data());
    return {};
  }

  bool next_mask(Traffic& t, std::array<std::uint8_t, 4>& key) {
    if (!t.masks) t.masks.reset(new MaskPool);
    MaskPool& pool = *t.masks;
    if (pool.used == sizeof pool.bytes) {
      if (!random_bytes(pool.bytes, sizeof pool.bytes)) return false;
      pool.used = 0;
    }
    std::memcpy(key.data(), pool.bytes + pool.used, 4);
    pool.used += 4;
    return true;
  }

  Traffic& traffic() {
    if (!t_) t_.reset(new Traffic);
    return *t_;
  }

  Role role_;
  State state_ = State::handshake;
  bool paused_ = false;     // the handler asked receive() to return
  bool receiving_ = false;  // in receive(): its handler may not release the traffic state
  bool close_sent_ = false;
  bool sending_fragments_ = false;
  Opcode sending_type_ = Opcode::binary;
  Utf8Validator send_utf8_;
  std::shared_ptr<const ConnectionOptions> opt_;
  Error error_;
  std::unique_ptr<Handshake> hs_;
  std::unique_ptr<Traffic> t_;
  std::unique_ptr<std::string> subprotocol_;  // set when one was agreed
};

// =====================================================================================
// ==== §4 Socket layer (POSIX / Winsock) ====                                   >>socket
// =====================================================================================
//
// Everything above this line does no I/O. This section is a thin, portable wrapper over
// BSD sockets: RAII, IPv4 and IPv6 through getaddrinfo, errors as values.

namespace net {

#if defined(_WIN32)
using socket_t = SOCKET;
constexpr socket_t kNoSocket = INVALID_SOCKET;
using PollFd = WSAPOLLFD;
inline int poll(PollFd* fds, std::size_t n, int timeout_ms) {
  return WSAPoll(fds, static_cast<ULONG>(n), timeout_ms);
}
inline bool would_block() {
  int e = WSAGetLastError();
  return e == WSAEWOULDBLOCK || e == WSAETIMEDOUT;
}
inline bool interrupted() { return WSAGetLastError() == WSAEINTR; }
inline void close_socket(socket_t s) { ::closesocket(s); }
constexpr int kNoSignal = 0;
#else
using socket_t = int;
constexpr socket_t kNoSocket = -1;
using PollFd = ::pollfd;
inline int poll(PollFd* fds, std::size_t n, int timeout_ms) {
  return ::poll(fds, static_cast<nfds_t>(n), timeout_ms);
}
// EAGAIN also reports a blocking socket's SO_RCVTIMEO/SO_SNDTIMEO expiring.
inline bool would_block() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS; }
inline bool interrupted() { return errno == EINTR; }
inline void close_socket(socket_t s) { ::close(s); }
#if defined(MSG_NOSIGNAL)
constexpr int kNoSignal = MSG_NOSIGNAL;  // a write to a closed peer must not raise SIGPIPE
#else
constexpr int kNoSignal = 0;  // macOS: SO_NOSIGPIPE is set on each socket instead
#endif
#endif

// Winsock needs WSAStartup once per process; POSIX needs nothing.
inline bool startup() {
#if defined(_WIN32)
  static const bool ok = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  return ok;
#else
  return true;
#endif
}

inline std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// recv()/send() results besides a byte count.
constexpr long kWouldBlock = -2;  // nonblocking socket not ready, or a socket timeout
constexpr long kFailed = -1;

class Socket {
 public:
  Socket() = default;
  explicit Socket(socket_t s) : s_(s) {}
  ~Socket() { close(); }
  Socket(Socket&& o) noexcept : s_(o.release()) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      close();
      s_ = o.release();
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  explicit operator bool() const { return s_ != kNoSocket; }
  socket_t handle() const { return s_; }
  socket_t release() {
    socket_t s = s_;
    s_ = kNoSocket;
    return s;
  }
  void close() {
    if (s_ != kNoSocket) close_socket(release());
  }

  bool set_nonblocking(bool on) {
#if defined(_WIN32)
    u_long mode = on ? 1 : 0;
    // MinGW's FIONBIO is an unsigned long constant; ioctlsocket() takes a long.
    return ioctlsocket(s_, static_cast<long>(FIONBIO), &mode) == 0;
#else
    int flags = fcntl(s_, F_GETFL, 0);
    if (flags < 0) return false;
    return fcntl(s_, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) == 0;
#endif
  }

  // Small frames go out at once (Nagle would hold them for the peer's delayed ACK).
  void set_nodelay() { set_option(IPPROTO_TCP, TCP_NODELAY, 1); }

  // Blocking driver: recv/send give up after `ms` (0 = never).
  void set_timeouts(int recv_ms, int send_ms) {
    set_timeout(SO_RCVTIMEO, recv_ms);
    set_timeout(SO_SNDTIMEO, send_ms);
  }
  void set_timeout(int which, int ms) {
#if defined(_WIN32)
    DWORD t = static_cast<DWORD>(ms);
#else
    timeval t{};
    t.tv_sec = ms / 1000;
    t.tv_usec = static_cast<decltype(t.tv_usec)>((ms % 1000) * 1000);
#endif
    setsockopt(s_, SOL_SOCKET, which, reinterpret_cast<const char*>(&t), sizeof t);
  }

  void set_option(int level, int name, int value) {
    setsockopt(s_, level, name, reinterpret_cast<const char*>(&value), sizeof value);
  }

  // Bytes received; 0 at end of stream; kWouldBlock; kFailed.
  long recv(void* data, std::size_t size) {
    while (true) {
#if defined(_WIN32)
      int n = ::recv(s_, static_cast<char*>(data), static_cast<int>(size > 1u << 30 ? 1u << 30 : size), 0);
#else
      ssize_t n = ::recv(s_, data, size, 0);
#endif
      if (n >= 0) return static_cast<long>(n);
      if (interrupted()) continue;
      return would_block() ? kWouldBlock : kFailed;
    }
  }

  // Bytes sent (maybe fewer than asked); kWouldBlock; kFailed.
  long send(const void* data, std::size_t size) {
    while (true) {
#if defined(_WIN32)
      int n = ::send(s_, static_cast<const char*>(data), static_cast<int>(size > 1u << 30 ? 1u << 30 : size), 0);
#else
      ssize_t n = ::send(s_, data, size, kNoSignal);
#endif
      if (n >= 0) return static_cast<long>(n);
      if (interrupted()) continue;
      return would_block() ? kWouldBlock : kFailed;
    }
  }

  // Half-close: we send no more, the peer still may.
  void shutdown_write() {
#if defined(_WIN32)
    ::shutdown(s_, SD_SEND);
#else
    ::shutdown(s_, SHUT_WR);
#endif
  }

  // Waits until the socket is readable (or writable); false on timeout. -1 waits forever.
  bool wait(bool for_write, int timeout_ms) {
    PollFd p{};
    p.fd = s_;
    p.events = for_write ? POLLOUT : POLLIN;
    std::int64_t deadline = now_ms() + timeout_ms;
    while (true) {
      int n = net::poll(&p, 1, timeout_ms);
      if (n > 0) return true;
      if (n == 0 || !interrupted()) return false;
      if (timeout_ms >= 0) timeout_ms = static_cast<int>(deadline - now_ms() > 0 ? deadline - now_ms() : 0);
    }
  }

 private:
  socket_t s_ = kNoSocket;
};

namespace detail {
struct AddrInfo {  // owns a getaddrinfo() result
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) freeaddrinfo(list);
  }
};

inline Socket open_socket(const addrinfo* a) {
  Socket s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
#if defined(SO_NOSIGPIPE)
  if (s) s.set_option(SOL_SOCKET, SO_NOSIGPIPE, 1);
#endif
#if !defined(_WIN32) && defined(FD_CLOEXEC)
  if (s) fcntl(s.handle(), F_SETFD, FD_CLOEXEC);
#endif
  return s;
}
}  // namespace detail

// Connects to host:port (a name, an IPv4 or an IPv6 address), trying each address in turn
// within `timeout_ms`. The socket is returned in nonblocking mode with TCP_NODELAY.
inline Error connect(const std::string& host, std::uint16_t port, int timeout_ms, Socket& out) {
  if (!startup()) return Error(Errc::socket_error, "WSAStartup failed");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  detail::AddrInfo found;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found.list) != 0)
    return Error(Errc::resolve_failed, "could not resolve the host name");
  std::int64_t deadline = now_ms() + timeout_ms;
  Error result(Errc::connect_failed, "connection refused or unreachable");
  for (const addrinfo* a = found.list; a; a = a->ai_next) {
    Socket s = detail::open_socket(a);
    if (!s || !s.set_nonblocking(true)) continue;
    if (::connect(s.handle(), a->ai_addr, static_cast<socklen_t>(a->ai_addrlen)) != 0) {
      if (!would_block()) continue;
      std::int64_t left = deadline - now_ms();
      if (left <= 0 || !s.wait(true, static_cast<int>(left))) {
        result = Error(Errc::timeout, "connect timed out (ClientOptions::connect_timeout_ms)");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s.handle(), SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len);
      if (err != 0) continue;
    }
    s.set_nodelay();
    out = std::move(s);
    return {};
  }
  return result;
}

// Listens on host:port ("" = every IPv4 address, "::" = IPv6 and IPv4). Port 0 picks a free
// port; `bound_port` reports it. The socket is nonblocking.
inline Error listen(const std::string& host, std::uint16_t port, Socket& out, std::uint16_t& bound_port) {
  if (!startup()) return Error(Errc::socket_error, "WSAStartup failed");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  detail::AddrInfo found;
  const char* node = host.empty() ? "0.0.0.0" : host.c_str();
  if (getaddrinfo(node, std::to_string(port).c_str(), &hints, &found.list) != 0)
    return Error(Errc::resolve_failed, "could not resolve the listen address");
  for (const addrinfo* a = found.list; a; a = a->ai_next) {
    Socket s = detail::open_socket(a);
    if (!s) continue;
#if defined(_WIN32)
    s.set_option(SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1);  // Windows' SO_REUSEADDR allows port theft
#else
    s.set_option(SOL_SOCKET, SO_REUSEADDR, 1);  // restart at once despite TIME_WAIT
#endif
    if (a->ai_family == AF_INET6) s.set_option(IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (::bind(s.handle(), a->ai_addr, static_cast<socklen_t>(a->ai_addrlen)) != 0) continue;
    if (::listen(s.handle(), SOMAXCONN) != 0 || !s.set_nonblocking(true)) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(s.handle(), reinterpret_cast<sockaddr*>(&addr), &len);
    bound_port = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    out = std::move(s);
    return {};
  }
  return Error(Errc::socket_error, "could not bind the listen address (in use?)");
}

// Accepts one pending connection (nonblocking, TCP_NODELAY), or returns an empty Socket.
inline Socket accept(Socket& listener) {
  while (true) {
    Socket s(::accept(listener.handle(), nullptr, nullptr));
    if (!s && interrupted()) continue;
    if (!s) return s;
#if defined(SO_NOSIGPIPE)
    s.set_option(SOL_SOCKET, SO_NOSIGPIPE, 1);
#endif
#if !defined(_WIN32) && defined(FD_CLOEXEC)
    fcntl(s.handle(), F_SETFD, FD_CLOEXEC);
#endif
    s.set_nonblocking(true);
    s.set_nodelay();
    return s;
  }
}

// A connected pair, so another thread (or a signal handler) can wake a poll() loop.
inline bool socket_pair(Socket& a, Socket& b) {
#if defined(_WIN32)
  Socket listener;
  std::uint16_t port = 0;
  if (listen("127.0.0.1", 0, listener, port)) return false;
  if (connect("127.0.0.1", port, 5000, a)) return false;
  listener.set_nonblocking(false);
  b = Socket(::accept(listener.handle(), nullptr, nullptr));
  return static_cast<bool>(b) && b.set_nonblocking(true);
#else
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return false;
  a = Socket(fds[0]);
  b = Socket(fds[1]);
  return a.set_nonblocking(true) && b.set_nonblocking(true);
#endif
}

}  // namespace net

// =====================================================================================
// ==== §5 Drivers: poll() loop or blocking sockets, chosen by macro ====        >>driver
// =====================================================================================
//
// A driver moves bytes between a socket and a Connection, and waits. Two are built in:
//   WEBSOCKET_USE_POLL (default)  nonblocking sockets; one thread serves every connection
//                                 with poll()/WSAPoll(); timers come from the poll timeout.
//   WEBSOCKET_USE_BLOCKING        blocking sockets with timeouts; the server gives each
//                                 connection a thread (one at a time with WEBSOCKET_NO_THREADS).
// The Client and Server below have the same API under both.

namespace detail {

#if defined(WEBSOCKET_NO_THREADS)
struct NullMutex {
  void lock() {}
  void unlock() {}
};
using Mutex = NullMutex;
using ListMutex = NullMutex;
#else
using Mutex = std::recursive_mutex;  // user callbacks run under it and may send again
using ListMutex = std::mutex;
#endif

template <class M>
struct Guard {  // std::lock_guard, which NullMutex works with too
  explicit Guard(M& m) : mutex(m) { mutex.lock(); }
  ~Guard() { mutex.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  M& mutex;
};

constexpr std::size_t kReadSize = 64 * 1024;  // one recv() takes up to this much

// Writes what the connection has queued. Poll driver: as much as the socket takes now.
// Blocking driver: all of it, or fail when the socket's send timeout expires.
// Returns false when the connection is lost.
inline bool flush(net::Socket& s, Connection& c) {
  while (c.buffered_amount() > 0) {
    std::string_view out = c.pending_output();
    long n = s.send(out.data(), out.size());
    if (n > 0) {
      c.consume_output(static_cast<std::size_t>(n));
      continue;
    }
#if defined(WEBSOCKET_USE_POLL)
    return n == net::kWouldBlock;
#else
    return false;  // the send timeout expired: the peer does not read
#endif
  }
  return true;
}

}  // namespace detail

// =====================================================================================
// ==== §6 Client and Server ====                                                   >>api
// =====================================================================================

struct Message {
  EventType type = EventType::text;  // text or binary (Client::receive also returns pongs)
  std::string data;
  bool is_text() const { return type == EventType::text; }
  bool is_binary() const { return type == EventType::binary; }
};

// ---- Client -------------------------------------------------------------------------------
//
//   ws::Client client;
//   if (ws::Error e = client.connect("ws://127.0.0.1:8080/chat")) puts(e.message());
//   client.send_text("hello");
//   ws::Message m;
//   if (!client.receive(m, 1000)) puts(m.data.c_str());
//   client.close();
//
// A Client is used from one thread at a time.

struct ClientOptions {
  std::vector<std::string> subprotocols;  // offered, in order of preference
  std::vector<HttpHeader> headers;        // extra request headers, e.g. Authorization
  Limits limits;
  int connect_timeout_ms = 10000;  // TCP connect plus the opening handshake
  int send_timeout_ms = 10000;     // a send that cannot progress this long fails
  int close_timeout_ms = 5000;     // close handshake, then waiting for the server's TCP close
};

class Client {
 public:
  Client() = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    if (conn_ && conn_->state() == Connection::State::open) close(close_code::going_away);
  }

  Error connect(std::string_view url, const ClientOptions& options = {}) {
    // A bad URL changes nothing; past this point the previous connection (if any) is gone.
    Url u;
    if (Error e = parse_url(url, u)) return e;
    if (u.secure) return Error(Errc::bad_url, "wss:// needs a TLS transport, which is not built in yet");
    send_timeout_ms_ = options.send_timeout_ms;
    close_timeout_ms_ = options.close_timeout_ms;
    inbox_.clear();
    opened_ = false;
    linger_deadline_ = -1;
    close_code_ = close_code::abnormal;
    close_reason_.clear();
    std::int64_t deadline = net::now_ms() + options.connect_timeout_ms;
    socket_.close();
    conn_.reset();
    if (Error e = net::connect(u.host, u.port, options.connect_timeout_ms, socket_)) return e;
#if defined(WEBSOCKET_USE_BLOCKING)
    socket_.set_nonblocking(false);
    // Without it a send to a server that reads nothing blocks forever; pump() sets the
    // receive timeout before each read.
    socket_.set_timeout(SO_SNDTIMEO, send_timeout_ms_);
#endif
    ConnectionOptions co;
    co.limits = options.limits;
    co.subprotocols = options.subprotocols;
    co.headers = options.headers;
    conn_.reset(new Connection(Role::client, std::make_shared<const ConnectionOptions>(std::move(co)),
                               &Connection::receive_response));
    if (Error e = conn_->start_client(u)) return e;
    if (Error e = flush()) return e;
    while (conn_->state() == Connection::State::handshake) {
      if (Error e = pump(deadline)) {
        socket_.close();
        return e.code == Errc::closed && conn_->error() ? conn_->error() : e;
      }
    }
    // The handshake succeeded if the connection opened, even when it is closing or closed
    // already (the server's close frame came in the same read as its 101): receive() then
    // finishes the close and reports close_code().
    if (!opened_) {
      socket_.close();
      return conn_->error() ? conn_->error() : Error(Errc::handshake_failed, "handshake failed");
    }
    return {};
  }

  Error send_text(std::string_view text) { return sent(ready() ? ready() : conn_->send_text(text)); }
  Error send_binary(std::string_view data) { return sent(ready() ? ready() : conn_->send_binary(data)); }
  Error send(const Message& m) { return m.is_text() ? send_text(m.data) : send_binary(m.data); }
  Error send_fragment(Opcode type, std::string_view data, bool fin) {
    return sent(ready() ? ready() : conn_->send_fragment(type, data, fin));
  }
  Error ping(std::string_view payload = {}) { return sent(ready() ? ready() : conn_->ping(payload)); }

  // Waits up to timeout_ms (-1: forever) for a message. Errc::timeout when none came,
  // Errc::closed once the connection is closed (close_code()/close_reason() say why).
  // A timeout of 0 still takes what has arrived already.
  Error receive(Message& m, int timeout_ms = -1) {
    std::int64_t deadline = timeout_ms < 0 ? -1 : net::now_ms() + timeout_ms;
    while (inbox_.empty()) {
      if (!conn_ || !socket_) return Error(Errc::closed, "the connection is closed");
      std::int64_t until = deadline;
      // Once the close handshake is done only the server's TCP close is left (RFC 6455
      // §7.1.1), and it is waited for at most ClientOptions::close_timeout_ms, whatever
      // timeout_ms says: a server that never closes must not hold us forever.
      if (conn_->state() == Connection::State::closed) {
        if (linger_deadline_ < 0) linger_deadline_ = net::now_ms() + close_timeout_ms_;
        if (until < 0 || linger_deadline_ < until) until = linger_deadline_;
      }
      if (Error e = pump(until, false, true)) {
        if (e.code == Errc::timeout && linger_deadline_ >= 0 && net::now_ms() >= linger_deadline_)
          return lost();
        return e;
      }
    }
    m = std::move(inbox_.front());
    inbox_.erase(inbox_.begin());
    return {};
  }

  // Closes the connection (RFC 6455 §7.1.2) and waits, within ClientOptions::close_timeout_ms,
  // for the server's close frame and then for the server to close the TCP connection first
  // (§7.1.1). Messages that arrive meanwhile stay available to receive().
  Error close(std::uint16_t code = close_code::normal, std::string_view reason = {}) {
    if (!conn_ || !socket_) return Error(Errc::closed, "the connection is closed");
    if (Error e = conn_->close(code, reason)) return e;
    std::int64_t deadline = net::now_ms() + close_timeout_ms_;
    if (!detail::flush(socket_, *conn_)) return lost();
    // pump() writes only after a read, and the server sends nothing before our close frame
    // arrives: when the socket did not take all of it at once, write the rest here.
    while (socket_ && !pump(deadline, conn_->buffered_amount() > 0)) {
      if (!detail::flush(socket_, *conn_)) break;
    }
    socket_.close();
    return {};
  }

  bool is_open() const { return conn_ && socket_ && conn_->state() == Connection::State::open; }
  const std::string& subprotocol() const { return conn_ ? conn_->subprotocol() : close_reason_; }
  std::uint16_t close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }
  std::size_t buffered_amount() const { return conn_ ? conn_->buffered_amount() : 0; }

 private:
  Error ready() const {
    if (!conn_ || !socket_) return Error(Errc::closed, "the connection is closed");
    return {};
  }

  // After a send: write the frame out now, within the send timeout.
  Error sent(Error e) { return e ? e : flush(); }

  Error flush() {
    std::int64_t deadline = net::now_ms() + send_timeout_ms_;
    while (socket_ && conn_->buffered_amount() > 0) {
      if (!detail::flush(socket_, *conn_)) return lost();
      if (conn_->buffered_amount() == 0) break;
      // Poll driver: keep reading while we wait to write, so two peers that both send a lot
      // cannot deadlock.
      if (Error e = pump(deadline, true)) return e;
    }
    return {};
  }

  // Waits for the socket until `deadline` (-1: none), reads once and handles the events.
  // Also finishes the closing sequence. Returns an error on timeout or once closed.
  // `no_wait_late`: past the deadline, still read what is ready now (timeout when nothing is).
  Error pump(std::int64_t deadline, bool want_write = false, bool no_wait_late = false) {
    if (!socket_) return Error(Errc::closed, "the connection is closed");
    int wait = -1;
    if (deadline >= 0) {
      std::int64_t left = deadline - net::now_ms();
      if (left <= 0 && !no_wait_late) return Error(Errc::timeout, "timed out");
      wait = left > 0 ? static_cast<int>(left) : 0;
    }
#if defined(WEBSOCKET_USE_POLL)
    net::PollFd p{};
    p.fd = socket_.handle();
    p.events = static_cast<short>(POLLIN | (want_write ? POLLOUT : 0));
    int ready = net::poll(&p, 1, wait);
    if (ready == 0) return Error(Errc::timeout, "timed out");
    if (ready < 0) return net::interrupted() ? Error() : lost();
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) return {};
#else
    (void)want_write;
    socket_.set_timeout(SO_RCVTIMEO, wait < 0 ? 0 : (wait == 0 ? 1 : wait));
#endif
    if (!buf_) buf_.reset(new std::uint8_t[detail::kReadSize]);
    long n = socket_.recv(buf_.get(), detail::kReadSize);
    if (n == net::kWouldBlock) return deadline >= 0 && net::now_ms() >= deadline ? Error(Errc::timeout, "timed out") : Error();
    auto on_event = [this](const Event& e) { take(e); };
    if (n <= 0) {
      conn_->receive_eof(on_event);
      return lost();
    }
    conn_->receive(buf_.get(), static_cast<std::size_t>(n), on_event);
    if (!detail::flush(socket_, *conn_)) return lost();
    if (!opened_ && conn_->state() == Connection::State::closed) return lost();  // handshake failed
    return {};
  }

  void take(const Event& e) {
    if (e.type == EventType::open) opened_ = true;
    if (e.type == EventType::text || e.type == EventType::binary || e.type == EventType::pong) {
      Message m;
      m.type = e.type;
      m.data.assign(e.data.data(), e.data.size());
      inbox_.push_back(std::move(m));
    } else if (e.type == EventType::close) {
      close_code_ = e.code;
      close_reason_.assign(e.data.data(), e.data.size());
    }
  }

  Error lost() {
    socket_.close();
    return Error(Errc::closed, "the connection is closed");
  }

  net::Socket socket_;
  std::unique_ptr<Connection> conn_;
  int send_timeout_ms_ = 0, close_timeout_ms_ = 0;  // connect() copies them from ClientOptions
  std::vector<Message> inbox_;
  std::unique_ptr<std::uint8_t[]> buf_;  // kReadSize bytes, once a read needs them
  std::uint16_t close_code_ = close_code::abnormal;
  std::string close_reason_;
  bool opened_ = false;  // the opening handshake of the last connect() succeeded
  std::int64_t linger_deadline_ = -1;  // closed: until when to wait for the server's TCP close
};

// ---- Server -------------------------------------------------------------------------------
//
//   ws::Server server;
//   server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });
//   if (ws::Error e = server.listen(8080)) return puts(e.message());
//   server.run();  // until stop(), from any thread or a signal handler
//
// Thread contract: callbacks run on the thread that called run() (poll driver) or on the
// connection's own thread (blocking driver), never two at once for one session. Session
// methods (send_*, close, ...) and Server::broadcast*/stop may be called from any thread;
// keep a std::shared_ptr<Session> (Session::shared()) to use a session outside a callback.
// Configure the server (routes, handlers, options) before run().

class Server;

struct Handlers {
  std::function<void(class Session&)> on_open;
  std::function<void(class Session&, const Message&)> on_message;
  std::function<void(class Session&, std::uint16_t code, std::string_view reason)> on_close;
};

struct ServerOptions {
  std::vector<std::string> subprotocols;  // supported; the first one the client lists wins
  Limits limits;
  bool auto_pong = true;
  std::size_t max_connections = 10000;  // beyond it, new connections get 503
  int handshake_timeout_ms = 10000;     // to complete the opening handshake
  int idle_ping_ms = 30000;             // ping a silent connection; drop it after 2x (0: off)
  int close_timeout_ms = 5000;          // for the close handshake and the TCP close
  // A peer that reads nothing while we have bytes for it is dropped after this long (on_close
  // gets 1006 and a reason that names this option); sends meanwhile fail with
  // Errc::send_buffer_full once Limits::max_send_buffer is queued.
  int send_timeout_ms = 10000;
  // RFC 6455 §10.2: browsers send the page's Origin ("https://app.example.com"); a request
  // whose Origin is not in this list gets 403 (compared ASCII case-insensitively). Empty:
  // any Origin. A request without Origin does not come from a browser page and is let
  // through (any other client can claim any Origin anyway): require it in on_handshake.
  std::vector<std::string> allowed_origins;
};

namespace detail {
struct ThreadState {
  const Message* delivering = nullptr;  // what on_message holds: validated when it arrived
  const void* serving = nullptr;        // blocking driver: the session this thread serves
};
inline ThreadState& this_thread() {
#if defined(WEBSOCKET_NO_THREADS)
  static ThreadState t;
#else
  static thread_local ThreadState t;
#endif
  return t;
}
}  // namespace detail

class Session : public std::enable_shared_from_this<Session> {
 public:
  Error send_text(std::string_view text) {
    return act([&](Connection& c) { return c.send_text(text); });
  }
  Error send_binary(std::string_view data) {
    return act([&](Connection& c) { return c.send_binary(data); });
  }
  // The message on_message is holding was validated on arrival: echoing it does not check
  // its UTF-8 again.
  Error send(const Message& m) {
    if (m.is_text() && &m != detail::this_thread().delivering) return send_text(m.data);
    return send_valid(m);
  }
  Error send_fragment(Opcode type, std::string_view data, bool fin) {
    return act([&](Connection& c) { return c.send_fragment(type, data, fin); });
  }
  Error ping(std::string_view payload = {}) {
    return act([&](Connection& c) { return c.ping(payload); });
  }
  Error close(std::uint16_t code = close_code::normal, std::string_view reason = {}) {
    return act([&](Connection& c) { return c.close(code, reason); });
  }

  std::size_t buffered_amount() const {
    if (!live_.load(std::memory_order_acquire)) return 0;
    detail::Guard<detail::Mutex> g(mutex());
    return conn_.buffered_amount();
  }
  bool is_open() const {
    if (!live_.load(std::memory_order_acquire)) return false;
    detail::Guard<detail::Mutex> g(mutex());
    return !dead_ && conn_.state() == Connection::State::open;
  }
  // The opening handshake: path, query, headers (Origin, Cookie, ...). In on_open (and in the
  // server's on_handshake hook) only: the server frees it when on_open returns, so that an
  // open connection costs little. Keep what you need, e.g. in user_data. Empty afterwards.
  const HttpRequest& request() const { return conn_.request(); }
  std::string_view path() const { return conn_.request().path(); }
  std::string_view query() const { return conn_.request().query(); }
  const std::string& subprotocol() const { return conn_.subprotocol(); }
  std::uint64_t id() const { return id_; }
  std::shared_ptr<Session> shared() { return shared_from_this(); }

  // Made by the Server only (Key is private): one allocation with its shared_ptr count.
  class Key {
    friend class Server;
    Key() {}  // user-provided: no aggregate initialization around it
  };
  Session(Key, Server& server, net::Socket socket, std::shared_ptr<const ConnectionOptions> options,
          std::uint64_t id)
      : server_(server),
        socket_(std::move(socket)),
        conn_(Role::server, std::move(options), &Connection::receive_request),
        id_(id) {}

  // Per-session user data: s.user_data = std::make_shared<State>(); s.user<State>()->...
  std::shared_ptr<void> user_data;
  template <class T>
  T* user() const {
    return static_cast<T*>(user_data.get());
  }

 private:
  friend class Server;

  template <class F>
  Error act(F&& f);  // locks, acts on the connection, then gets the bytes moving
  Error send_valid(const Message& m) {  // binary, or text known to be valid UTF-8
    return act([&](Connection& c) {
      return c.send_message(m.is_text() ? Opcode::text : Opcode::binary, m.data.data(), m.data.size());
    });
  }

#if defined(WEBSOCKET_USE_POLL)
  // One of a few shared by all sessions (the loop never blocks or runs a callback holding
  // one), rather than 40 bytes each. They outlive every Server: a Session may too.
  detail::Mutex& mutex() const {
    static detail::Mutex* const locks = new detail::Mutex[kLocks];  // never freed, on purpose
    return locks[id_ % kLocks];
  }
  static constexpr std::size_t kLocks = 64;
#else
  detail::Mutex& mutex() const { return mutex_; }  // its own: a blocking write holds it
  mutable detail::Mutex mutex_;
#endif

  // Kept small: a server may hold many thousands of these.
  Server& server_;
  net::Socket socket_;
  // Driver state, touched by the thread that serves this session.
  enum class Timer : std::uint8_t { handshake, close, linger };
  Timer timer_ = Timer::handshake;  // what deadline_ is for
  bool ping_sent_ = false;
  bool opened_ = false;
  bool settle_ = false;  // just opened: release the buffers once the 101 is written
  bool quiet_ = false;   // no traffic for Server::kQuietMs: buffers released
  bool close_notified_ = false;
  bool dead_ = false;  // the socket failed or was closed: nothing more to do
  bool want_write_ = false;
  std::atomic<bool> finished_{false};  // blocking driver: its thread is done
  // Its handshake is over: other threads may act on it (under the lock). Until then only the
  // thread that serves it touches it, without the lock.
  std::atomic<bool> live_{false};
  enum class Drop : std::uint8_t { none, write_failed, send_timeout, no_pong, no_close };
  Drop drop_ = Drop::none;  // why the server dropped it (on_close's reason)
  Connection conn_;
  std::uint64_t id_;
  const Handlers* handlers_ = nullptr;
  std::int64_t deadline_ = 0;  // for the handshake, then the close handshake, then the linger
  std::int64_t last_input_ = 0;
  std::int64_t last_output_ = 0;
  std::int64_t stalled_since_ = 0;     // poll driver: output waiting, none written since
};

class Server {
 public:
  explicit Server(ServerOptions options = {}) : opt_(std::move(options)) {}
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Handlers for every path that has no route() of its own.
  void on_open(std::function<void(Session&)> f) { default_.on_open = std::move(f); }
  void on_message(std::function<void(Session&, const Message&)> f) { default_.on_message = std::move(f); }
  void on_close(std::function<void(Session&, std::uint16_t, std::string_view)> f) {
    default_.on_close = std::move(f);
  }
  // Handlers for one path ("/chat"). Paths with neither a route nor default handlers get 404.
  void route(std::string path, Handlers handlers) {
    routes_.emplace_back(std::move(path), std::move(handlers));
  }
  // Sees each upgrade request and the prepared answer (101 or an error status); may reject
  // it (set status and body), add headers, or set Sec-WebSocket-Protocol.
  void on_handshake(std::function<void(const HttpRequest&, HttpResponse&)> f) { on_handshake_ = std::move(f); }
  // Answers requests that are not upgrades (one port serves a page and its WebSocket). The
  // answer comes prefilled with 404, or 426 on a WebSocket path.
  void on_http(std::function<void(const HttpRequest&, HttpResponse&)> f) { on_http_ = std::move(f); }

  // Listens on host:port ("" = all IPv4 addresses, "::" = all IPv6 and IPv4). Port 0 picks
  // a free port: port() reports it.
  Error listen(std::uint16_t port, const std::string& host = "") {
    if (Error e = net::listen(host, port, listener_, port_)) return e;
    if (!net::socket_pair(wake_rx_, wake_tx_))
      return Error(Errc::socket_error, "could not create the wake-up socket pair");
    return {};
  }
  std::uint16_t port() const { return port_; }

  // Serves until stop(). Then every open connection gets close 1001, and run() returns once
  // they are closed (or the close timeout passed).
  Error run();

  // Thread-safe and async-signal-safe.
  void stop() {
    stop_requested_.store(true);
    wake();
  }

  // Sends to every open session; returns how many took it. From any thread.
  std::size_t broadcast(const Message& m) {
    if (m.is_text() && !is_valid_utf8(m.data)) return 0;  // checked once, not per session
    std::size_t sent = 0;
    for (const std::shared_ptr<Session>& s : snapshot()) sent += s->send_valid(m) ? 0u : 1u;
    return sent;
  }
  std::size_t broadcast_text(std::string_view text) {
    std::size_t sent = 0;
    for (const std::shared_ptr<Session>& s : snapshot()) sent += s->send_text(text) ? 0u : 1u;
    return sent;
  }
  std::vector<std::shared_ptr<Session>> snapshot() const {
    detail::Guard<detail::ListMutex> g(list_mutex_);
    return sessions_;
  }
  std::size_t connection_count() const {
    detail::Guard<detail::ListMutex> g(list_mutex_);
    return sessions_.size();
  }
  const ServerOptions& options() const { return opt_; }

 private:
  friend class Session;

  // An event copied out of the Connection, so callbacks run without the session's lock.
  struct Pending {
    EventType type;
    std::uint16_t code;
    Message message;
  };
  struct Dispatch {  // per driver thread: reused buffers
    std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(detail::kReadSize);
    std::vector<Pending> pending;
    std::size_t count = 0;
  };

  void wake() {
    if (wake_pending_.exchange(true)) return;
    if (wake_tx_) {
      char c = 1;
      wake_tx_.send(&c, 1);
    }
  }
  void wake_from_other_thread() {
#if defined(WEBSOCKET_USE_POLL) && !defined(WEBSOCKET_NO_THREADS)
    if (std::this_thread::get_id() != loop_thread_.load()) wake();
#endif
  }

  ConnectionOptions connection_options() {
    ConnectionOptions co;
    co.limits = opt_.limits;
    co.auto_pong = opt_.auto_pong;
    co.subprotocols = opt_.subprotocols;
    co.on_handshake = [this](const HttpRequest& req, HttpResponse& answer) { decide(req, answer); };
    return co;
  }

  const Handlers* find_route(std::string_view path) const {
    for (const auto& r : routes_)
      if (r.first == path) return &r.second;
    bool any_default = default_.on_open || default_.on_message || default_.on_close;
    return any_default ? &default_ : nullptr;
  }

  // The server's part of the opening handshake: routes, the plain-HTTP handler, the hook.
  void decide(const HttpRequest& req, HttpResponse& answer) {
    const Handlers* h = find_route(req.path());
    if (!req.has_token("Upgrade", "websocket")) {
      answer = h ? detail::error_response(426, "Upgrade Required: this is a WebSocket endpoint")
                 : detail::error_response(404, "Not Found");
      if (h) answer.add("Upgrade", "websocket");
      if (on_http_) on_http_(req, answer);
      return;
    }
    if (!h) answer = detail::error_response(404, "Not Found");
    // §10.2: an unexpected Origin SHOULD get 403. The body names no request bytes.
    if (answer.status == 101 && !origin_allowed(req))
      answer = detail::error_response(403, "Forbidden: Origin not allowed");
    if (on_handshake_) on_handshake_(req, answer);
  }

  bool origin_allowed(const HttpRequest& req) const {
    const std::string* origin = req.find("Origin");
    if (opt_.allowed_origins.empty() || !origin) return true;
    for (const std::string& o : opt_.allowed_origins)
      if (detail::iequals(o, *origin)) return true;
    return false;
  }

  // Reads once from a session and runs the callbacks for what arrived. False: connection lost.
  void read(Session& s, Dispatch& d) {
    long n;
    {
      detail::Guard<detail::Mutex> g(s.mutex());
      if (s.dead_) return;
      n = s.socket_.recv(d.buf.data(), d.buf.size());
      if (n == net::kWouldBlock) return;
      if (n <= 0) {
        s.dead_ = true;
        s.conn_.receive_eof([&](const Event& e) { queue(s, d, e); });
      }
    }
    if (n <= 0) return dispatch(s, d);
    feed(s, d, static_cast<std::size_t>(n));
  }

  // Hands what was read to the connection, running the callbacks after each message, outside
  // the lock: so the reply to a message goes out before the answer to a close frame that came
  // behind it in the same read.
  void feed(Session& s, Dispatch& d, std::size_t n) {
    std::size_t at = 0, used;
    auto on_event = [&](const Event& e) {
      queue(s, d, e);
      // Pause after a message, and after the handshake.
      return e.type != EventType::text && e.type != EventType::binary && e.type != EventType::open;
    };
    auto take = [&] {
      s.last_input_ = net::now_ms();
      s.ping_sent_ = false;
      s.quiet_ = false;
      return s.conn_.receive(d.buf.data() + at, n - at, on_event);
    };
    do {
      if (!s.live_.load(std::memory_order_relaxed)) {
        // The opening handshake, without the lock: no other thread touches a session before
        // it is live, and the hooks it runs (on_handshake, on_http) may take locks of their
        // own and send to other sessions.
        used = take();
        if (s.conn_.state() != Connection::State::handshake) s.live_.store(true, std::memory_order_release);
      } else {
        detail::Guard<detail::Mutex> g(s.mutex());
        used = take();
      }
      at += used;
      dispatch(s, d);
    } while (used > 0 && at < n);
  }

  void queue(Session& s, Dispatch& d, const Event& e) {
    if (e.type == EventType::ping || e.type == EventType::pong) return;
    if (e.type == EventType::open) {
      s.opened_ = true;
      s.settle_ = true;
      s.handlers_ = find_route(s.conn_.request().path());
    }
    if (d.count == d.pending.size()) d.pending.emplace_back();
    Pending& p = d.pending[d.count++];
    p.type = e.type;
    p.code = e.code;
    p.message.type = e.type;
    // The connection's own buffer changes hands; bytes in the read buffer are copied (into
    // the capacity the string has from earlier messages).
    if (!s.conn_.take_message(p.message.data)) p.message.data.assign(e.data.data(), e.data.size());
  }

  void dispatch(Session& s, Dispatch& d) {
    const Handlers* h = s.handlers_;
    for (std::size_t i = 0; i < d.count; ++i) {
      const Pending& p = d.pending[i];
      if (!h) continue;
      if (p.type == EventType::open) {
        if (h->on_open) h->on_open(s);
        detail::Guard<detail::Mutex> g(s.mutex());
        s.conn_.release_memory();  // the opening request is for on_open only
      }
      if ((p.type == EventType::text || p.type == EventType::binary) && h->on_message) {
        const Message*& delivering = detail::this_thread().delivering;
        const Message* outer = delivering;
        delivering = &p.message;
        h->on_message(s, p.message);
        delivering = outer;
      }
      if (p.type == EventType::close) notify_close(s, p.code, p.message.data);
    }
    d.count = 0;
  }

  void notify_close(Session& s, std::uint16_t code, std::string_view reason) {
    if (!s.opened_ || s.close_notified_) return;
    s.close_notified_ = true;
    if (s.handlers_ && s.handlers_->on_close) s.handlers_->on_close(s, code, reason);
  }

  // Writes pending output and runs the session's timers. Returns false when the session is
  // over (its socket can be closed). `next` is lowered to the session's next deadline.
  bool service(Session& s, std::int64_t now, std::int64_t& next) {
    detail::Guard<detail::Mutex> g(s.mutex());
    Connection& c = s.conn_;
    if (!s.dead_ && c.buffered_amount() > 0) {
      s.last_output_ = now;  // output is traffic too: the buffers may go once it stops
      s.quiet_ = false;
      const std::size_t before = c.buffered_amount();
      if (!detail::flush(s.socket_, c)) return drop(s, Session::Drop::write_failed);
      if (c.buffered_amount() < before) s.stalled_since_ = 0;  // the peer reads
    }
    if (s.dead_) return false;
#if defined(WEBSOCKET_USE_POLL)
    // The blocking driver's send timeout, on the clock: a peer that takes none of the bytes
    // waiting for it during send_timeout_ms is dropped (memory stays bounded meanwhile by
    // Limits::max_send_buffer, but a connection that never drains must not live forever).
    if (c.buffered_amount() == 0) {
      s.stalled_since_ = 0;
    } else {
      if (s.stalled_since_ == 0) s.stalled_since_ = now;
      const std::int64_t give_up = s.stalled_since_ + opt_.send_timeout_ms;
      if (now >= give_up) return drop(s, Session::Drop::send_timeout);
      if (give_up < next) next = give_up;
    }
#endif
    if (stop_requested_.load()) {
      if (c.state() == Connection::State::handshake) return false;
      if (c.state() == Connection::State::open) {
        c.close(close_code::going_away, "server shutting down");
        if (!detail::flush(s.socket_, c)) return false;
      }
    }
    s.want_write_ = c.buffered_amount() > 0;
    // A connection that has just opened, or has been quiet for a while, gives back the
    // memory it holds for the handshake and for traffic (buffers regrow with traffic).
    const std::int64_t last_traffic = s.last_input_ > s.last_output_ ? s.last_input_ : s.last_output_;
    if (!s.quiet_ && !s.want_write_ && (s.settle_ || now - last_traffic >= kQuietMs)) {
      c.release_memory();
      s.quiet_ = true;
      s.settle_ = false;
    }
    auto until = [&](std::int64_t deadline) {
      if (deadline < next) next = deadline;
      return now < deadline;
    };
    switch (c.state()) {
      case Connection::State::handshake:
        return until(s.deadline_);
      case Connection::State::open:
        if (opt_.idle_ping_ms <= 0) return true;
        if (now - s.last_input_ >= opt_.idle_ping_ms && !s.ping_sent_) {
          s.ping_sent_ = true;  // RFC 6455 §5.5.2: a ping as a keepalive
          c.ping();
          if (!detail::flush(s.socket_, c)) return drop(s, Session::Drop::write_failed);
          s.want_write_ = c.buffered_amount() > 0;
        }
        if (until(s.last_input_ + (s.ping_sent_ ? 2 : 1) * std::int64_t{opt_.idle_ping_ms}) || !s.ping_sent_)
          return true;
        return drop(s, Session::Drop::no_pong);
      case Connection::State::closing:
      case Connection::State::closed:
        // RFC 6455 §7.1.7: a peer that never answers our close is dropped.
        if (s.timer_ == Session::Timer::handshake) {
          s.timer_ = Session::Timer::close;
          s.deadline_ = now + opt_.close_timeout_ms;
        }
        if (c.state() == Connection::State::closing)
          return until(s.deadline_) || drop(s, Session::Drop::no_close);
        if (c.buffered_amount() > 0) return until(s.deadline_);
        // RFC 6455 §7.1.1: the server closes the TCP connection first. Half-close, then read
        // until the peer closes too, so our last bytes are not lost to a reset.
        if (s.timer_ != Session::Timer::linger) {
          s.socket_.shutdown_write();
          s.timer_ = Session::Timer::linger;
          s.deadline_ = now + opt_.close_timeout_ms;
        }
        return until(s.deadline_);
    }
    return false;
  }

  // The session is over: tell the user (if it was open), close the socket, forget it.
  void retire(Session& s) {
    const char* why;
    {
      detail::Guard<detail::Mutex> g(s.mutex());
      s.dead_ = true;
      s.socket_.close();
      why = drop_reason(s.drop_);
    }
    notify_close(s, close_code::abnormal, why);
  }

  // Ends a session for a reason on_close will report (with 1006: no close frame came).
  static bool drop(Session& s, Session::Drop why) {
    if (s.drop_ == Session::Drop::none) s.drop_ = why;
    return false;
  }
  static const char* drop_reason(Session::Drop why) {
    switch (why) {
      case Session::Drop::none:
        break;
      case Session::Drop::write_failed:
#if defined(WEBSOCKET_USE_POLL)
        return "connection lost while writing";
#else
        return "the peer read nothing for ServerOptions::send_timeout_ms, or the connection was lost";
#endif
      case Session::Drop::send_timeout:
        return "the peer read nothing for ServerOptions::send_timeout_ms";
      case Session::Drop::no_pong:
        return "no answer to the idle ping within ServerOptions::idle_ping_ms";
      case Session::Drop::no_close:
        return "no close answer within ServerOptions::close_timeout_ms";
    }
    return "connection dropped";
  }
  static constexpr std::int64_t kQuietMs = 1000;

  std::shared_ptr<Session> add_session(net::Socket socket, std::int64_t now) {
    auto s = std::make_shared<Session>(Session::Key(), *this, std::move(socket), conn_options_, ++next_id_);
    s->deadline_ = now + opt_.handshake_timeout_ms;
    s->last_input_ = now;
    detail::Guard<detail::ListMutex> g(list_mutex_);
    sessions_.push_back(s);
    return s;
  }

  void remove_session(const Session* s) {
    detail::Guard<detail::ListMutex> g(list_mutex_);
    for (std::size_t i = 0; i < sessions_.size(); ++i) {
      if (sessions_[i].get() != s) continue;
      sessions_[i] = std::move(sessions_.back());
      sessions_.pop_back();
      return;
    }
  }

  static void reject_busy(net::Socket& s) {
    static constexpr char kBusy[] =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    s.send(kBusy, sizeof kBusy - 1);
  }

#if defined(WEBSOCKET_USE_POLL)
  Error run_poll();
#else
  Error run_blocking();
  void serve(Session& s);
#endif

  ServerOptions opt_;
  std::shared_ptr<const ConnectionOptions> conn_options_;  // one copy for every session
  Handlers default_;
  std::vector<std::pair<std::string, Handlers>> routes_;
  std::function<void(const HttpRequest&, HttpResponse&)> on_handshake_, on_http_;
  net::Socket listener_, wake_rx_, wake_tx_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> wake_pending_{false};
#if defined(WEBSOCKET_USE_POLL) && !defined(WEBSOCKET_NO_THREADS)
  std::atomic<std::thread::id> loop_thread_{};  // poll driver only (clang: unused field)
#endif
  mutable detail::ListMutex list_mutex_;
  std::vector<std::shared_ptr<Session>> sessions_;
  std::uint64_t next_id_ = 0;
};

template <class F>
Error Session::act(F&& f) {
  if (!live_.load(std::memory_order_acquire))
    return Error(Errc::not_open, "the connection is not open (handshake pending)");
  {
    detail::Guard<detail::Mutex> g(mutex());
    if (dead_) return Error(Errc::closed, "the connection is closed");
    if (Error e = f(conn_)) return e;
#if defined(WEBSOCKET_USE_BLOCKING)
    // The thread serving this session writes what its callbacks send once they have run (one
    // write for a read's worth of replies), unless that grows big; other threads write now.
    if (detail::this_thread().serving == this && conn_.buffered_amount() < detail::kReadSize) return {};
    last_output_ = net::now_ms();  // see Server::service()
    quiet_ = false;
    if (!detail::flush(socket_, conn_)) {
      dead_ = true;
      if (drop_ == Drop::none) drop_ = Drop::write_failed;
      return Error(Errc::closed, "the connection was lost, or the peer read nothing for "
                                 "ServerOptions::send_timeout_ms");
    }
    return {};
#endif
  }
  server_.wake_from_other_thread();  // poll: the loop writes it (at once if we are on it)
  return {};
}

inline Error Server::run() {
  if (!listener_) return Error(Errc::socket_error, "call listen() before run()");
  conn_options_ = std::make_shared<const ConnectionOptions>(connection_options());
#if defined(WEBSOCKET_USE_POLL)
  return run_poll();
#else
  return run_blocking();
#endif
}

#if defined(WEBSOCKET_USE_POLL)
// One thread, every connection: poll() the listener, a wake-up socket and each session.
inline Error Server::run_poll() {
#if !defined(WEBSOCKET_NO_THREADS)
  loop_thread_.store(std::this_thread::get_id());
#endif
  Dispatch d;
  std::vector<net::PollFd> fds;
  std::int64_t stop_deadline = -1;
  while (true) {
    std::int64_t now = net::now_ms();
    if (stop_requested_.load() && stop_deadline < 0) {
      stop_deadline = now + opt_.close_timeout_ms;
      listener_.close();
    }
    std::int64_t next = now + 1000;
    for (std::size_t i = 0; i < sessions_.size();) {
      std::shared_ptr<Session> s = sessions_[i];
      if (service(*s, now, next)) {
        ++i;
        continue;
      }
      retire(*s);
      remove_session(s.get());  // swaps the last session into slot i
    }
    if (stop_deadline >= 0 && (sessions_.empty() || now >= stop_deadline)) break;

    fds.resize(2 + sessions_.size());
    fds[0] = net::PollFd{};
    fds[0].fd = wake_rx_.handle();
    fds[0].events = POLLIN;
    fds[1] = net::PollFd{};
    fds[1].fd = listener_ ? listener_.handle() : net::kNoSocket;
    fds[1].events = POLLIN;
    for (std::size_t i = 0; i < sessions_.size(); ++i) {
      net::PollFd& p = fds[2 + i];
      p = net::PollFd{};
      p.fd = sessions_[i]->socket_.handle();
      p.events = static_cast<short>(POLLIN | (sessions_[i]->want_write_ ? POLLOUT : 0));
    }
    std::int64_t wait = next - now;
    if (stop_deadline >= 0 && stop_deadline - now < wait) wait = stop_deadline - now;
    int ready = net::poll(fds.data(), listener_ ? fds.size() : fds.size(), static_cast<int>(wait < 0 ? 0 : wait));
    if (ready < 0 && !net::interrupted()) return Error(Errc::socket_error, "poll() failed");
    if (ready <= 0) continue;
    if (fds[0].revents) {
      // Drain first, then clear the flag: a wake() in between sees it still set and sends no
      // byte, but its work is queued already and the service() pass below picks it up.
      // Clearing first could drain the byte of a wake() that set the flag again, leaving the
      // flag set with no byte to read, and every later wake() would then be lost.
      char drain[64];
      while (wake_rx_.recv(drain, sizeof drain) > 0) {
      }
      wake_pending_.store(false);
    }
    const std::size_t polled = sessions_.size();
    for (std::size_t i = 0; i < polled; ++i) {
      if (fds[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) read(*sessions_[i], d);
    }
    if (listener_ && (fds[1].revents & POLLIN)) {
      while (net::Socket sock = net::accept(listener_)) {
        if (sessions_.size() >= opt_.max_connections) {
          reject_busy(sock);
          continue;
        }
        // Not `now`: poll() may have slept since, and the handshake timeout and idle timer
        // count from the accept.
        add_session(std::move(sock), net::now_ms());
      }
    }
  }
  for (const std::shared_ptr<Session>& s : snapshot()) retire(*s);
  detail::Guard<detail::ListMutex> g(list_mutex_);
  sessions_.clear();
  return {};
}
#else
// The listener on this thread; each connection on a thread of its own (or, without threads,
// one connection at a time on this one).
inline Error Server::run_blocking() {
#if !defined(WEBSOCKET_NO_THREADS)
  std::vector<std::pair<std::thread, std::shared_ptr<Session>>> workers;
  auto reap = [&](bool all) {
    for (std::size_t i = 0; i < workers.size();) {
      if (!all && !workers[i].second->finished_.load()) {
        ++i;
        continue;
      }
      workers[i].first.join();
      workers[i] = std::move(workers.back());
      workers.pop_back();
    }
  };
#endif
  constexpr int kTick = 100;  // how often a blocked thread looks at the clock and stop()
  while (!stop_requested_.load()) {
#if !defined(WEBSOCKET_NO_THREADS)
    reap(false);
#endif
    if (!listener_.wait(false, kTick)) continue;
    net::Socket sock = net::accept(listener_);
    if (!sock) continue;
    if (connection_count() >= opt_.max_connections) {
      reject_busy(sock);
      continue;
    }
    sock.set_nonblocking(false);
    sock.set_timeouts(kTick, opt_.send_timeout_ms);
    std::shared_ptr<Session> s = add_session(std::move(sock), net::now_ms());
#if defined(WEBSOCKET_NO_THREADS)
    serve(*s);
#else
    workers.emplace_back(std::thread([this, s] { serve(*s); }), s);
#endif
  }
  listener_.close();
#if !defined(WEBSOCKET_NO_THREADS)
  reap(true);  // each worker sends close 1001 and finishes within the close timeout
#endif
  return {};
}

inline void Server::serve(Session& s) {
  Dispatch d;
  std::int64_t next = 0;
  detail::this_thread().serving = &s;
  while (service(s, net::now_ms(), next)) {
    long n = s.socket_.recv(d.buf.data(), d.buf.size());  // unlocked: others may send
    if (n == net::kWouldBlock) continue;                   // a tick: look at the timers
    if (n > 0) {
      feed(s, d, static_cast<std::size_t>(n));
      continue;
    }
    {
      detail::Guard<detail::Mutex> g(s.mutex());
      s.dead_ = true;
      s.conn_.receive_eof([&](const Event& e) { queue(s, d, e); });
    }
    dispatch(s, d);
  }
  retire(s);
  remove_session(&s);
  detail::this_thread().serving = nullptr;
  s.finished_.store(true);
}
#endif

}  // namespace ws

#endif  // WEBSOCKET_HPP
