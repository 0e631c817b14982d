// loadgen.cpp: WebSocket echo load generator (a benchmark tool, not a test). Linux, epoll,
// one thread, no dependencies.
//
//   loadgen --port N [--host 127.0.0.1] [--conns C] [--depth D] [--size S] [--text]
//           [--seconds T] [--warmup W] [--stat-pid PID] [--raw | --idle]
//
// Opens C connections, each with a real opening handshake (Sec-WebSocket-Accept is checked),
// keeps D masked messages of S bytes in flight per connection, checks every echoed byte, and
// after W seconds of warm-up counts for T seconds. Prints one JSON line on stdout:
//   msgs_per_s     echoed messages per second (all connections)
//   mb_per_s       echoed payload bytes per second, 1e6 bytes, one direction
//   p50_us/p99_us  round trip of a message, send to last echoed byte (~1% buckets)
//   errors         connections failed, mismatched bytes, unexpected frames
//   server_cpu_s / server_cpu_us_per_msg   with --stat-pid: the server's user+sys time
//                  (/proc/PID/stat, all threads) over the measured T seconds, and per message
//   gen_cpu_s      this process's CPU time over the same T seconds
// --text sends text frames of valid UTF-8 (mixed 1-4 byte sequences), so the server validates.
// --raw: no WebSocket: the same frame bytes over plain TCP, echoed back byte for byte by
//        bench/raw_echo (the physical limit of the machine for this traffic).
// --idle: open C connections (after a first one), hold them for T seconds, answering pings;
//        with --stat-pid reports the server's VmRSS before and after, and KiB per connection.
// Exit status: 0 when no error, 1 on any error (a mismatch is also printed on stderr), 2 usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

// ---- small primitives --------------------------------------------------------------------
std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::uint64_t rng_state = 0x9E3779B97F4A7C15ull;
std::uint64_t rnd() {  // xorshift64*: masking keys and handshake nonces of a load generator
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

struct Sha1 {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  static std::uint32_t rol(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }
  void block(const unsigned char* p) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i)
      w[i] = std::uint32_t{p[4 * i]} << 24 | std::uint32_t{p[4 * i + 1]} << 16 |
             std::uint32_t{p[4 * i + 2]} << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else f = b ^ c ^ d, k = 0xCA62C1D6;
      std::uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::string digest(const std::string& msg) {
    std::string m = msg;
    std::uint64_t bits = std::uint64_t{msg.size()} * 8;
    m += '\x80';
    while (m.size() % 64 != 56) m += '\0';
    for (int i = 7; i >= 0; --i) m += static_cast<char>((bits >> (8 * i)) & 0xFF);
    for (std::size_t i = 0; i < m.size(); i += 64) block(reinterpret_cast<const unsigned char*>(m.data() + i));
    std::string out;
    for (std::uint32_t x : h)
      for (int i = 3; i >= 0; --i) out += static_cast<char>((x >> (8 * i)) & 0xFF);
    return out;
  }
};

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = unsigned(static_cast<unsigned char>(in[i])) << 16 |
                 unsigned(static_cast<unsigned char>(in[i + 1])) << 8 | static_cast<unsigned char>(in[i + 2]);
    out += t[v >> 18], out += t[(v >> 12) & 63], out += t[(v >> 6) & 63], out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = unsigned(static_cast<unsigned char>(in[i])) << 16;
    out += t[v >> 18], out += t[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v = unsigned(static_cast<unsigned char>(in[i])) << 16 | unsigned(static_cast<unsigned char>(in[i + 1])) << 8;
    out += t[v >> 18], out += t[(v >> 12) & 63], out += t[(v >> 6) & 63], out += '=';
  }
  return out;
}

// Log-linear histogram of nanoseconds: 128 sub-buckets per power of two (< 1% error).
struct Histogram {
  static constexpr int kSub = 7;
  std::vector<std::uint64_t> b = std::vector<std::uint64_t>(64 << kSub);
  std::uint64_t n = 0;
  static std::size_t index(std::uint64_t v) {
    if (v < (1u << kSub)) return static_cast<std::size_t>(v);
    int e = 63 - __builtin_clzll(v) - kSub;  // v >> e is in [2^kSub, 2^(kSub+1))
    return static_cast<std::size_t>((e + 1) << kSub) + static_cast<std::size_t>((v >> e) - (1u << kSub));
  }
  static double value(std::size_t i) {  // midpoint of bucket i
    if (i < (1u << kSub)) return static_cast<double>(i);
    int e = static_cast<int>(i >> kSub) - 1;
    double lo = static_cast<double>((i & ((1u << kSub) - 1)) + (1u << kSub)) * std::ldexp(1.0, e);
    return lo + std::ldexp(1.0, e) / 2;
  }
  void add(std::int64_t v) {
    ++b[index(v < 0 ? 0 : static_cast<std::uint64_t>(v))];
    ++n;
  }
  double quantile(double q) const {
    if (n == 0) return 0;
    std::uint64_t want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n)));
    if (want == 0) want = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < b.size(); ++i)
      if ((seen += b[i]) >= want) return value(i);
    return 0;
  }
};

// ---- options ---------------------------------------------------------------------------------
struct Options {
  std::string host = "127.0.0.1";
  int port = -1;
  int conns = 100;
  int depth = 1;
  std::size_t size = 32;
  bool text = false, raw = false, idle = false;
  double seconds = 5, warmup = 1;
  int stat_pid = 0;
} opt;

long errors = 0;
int error_reports = 0;
__attribute__((format(printf, 1, 2))) void error(const char* fmt, ...) {
  ++errors;
  if (error_reports++ >= 10) return;  // the count says the rest
  std::fprintf(stderr, "loadgen: ERROR: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
}

double proc_cpu_seconds(int pid) {  // utime + stime of the whole process (all threads)
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char buf[4096];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may contain spaces
  if (!p) return -1;
  unsigned long utime = 0, stime = 0;
  // Fields after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
  // cmajflt utime(14) stime(15).
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long proc_rss_kib(int pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  std::fclose(f);
  return kib;
}

double self_cpu_seconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- payloads ----------------------------------------------------------------------------------
// Every message: 16 hex digits (connection id << 40 | sequence number), then a fixed pattern.
// Text: the pattern is valid UTF-8 mixing 1-4 byte sequences (and the prefix is ASCII).
std::vector<unsigned char> pattern;
constexpr std::size_t kPrefix = 16;

void make_pattern() {
  pattern.resize(opt.size);
  std::size_t i = 0;
  if (!opt.text) {
    for (; i < opt.size; ++i) pattern[i] = static_cast<unsigned char>(rnd());
    return;
  }
  for (; i < kPrefix && i < opt.size; ++i) pattern[i] = 'x';  // overwritten by the ASCII tag
  static const char* pieces[] = {"echo ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "abc", "\xD0\x96", "\xE4\xB8\xAD", " "};
  while (i < opt.size) {
    const char* p = pieces[rnd() % 8];
    std::size_t n = std::strlen(p);
    if (i + n > opt.size) p = "x", n = 1;
    std::memcpy(&pattern[i], p, n);
    i += n;
  }
}

void make_prefix(std::uint64_t tag, unsigned char* out) {
  static const char* hex = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, tag >>= 4) out[i] = static_cast<unsigned char>(hex[tag & 15]);
}

// ---- connections -------------------------------------------------------------------------------
enum class Phase { connecting, handshake, open, dead };

struct Inflight {
  std::int64_t sent_ns;
  std::uint64_t tag;
  std::size_t wire;  // raw mode: bytes of the frame
};

struct Conn {
  int fd = -1;
  int id = 0;
  Phase phase = Phase::connecting;
  std::string key, head;  // handshake
  std::vector<unsigned char> out;
  std::size_t out_head = 0;
  bool want_out = false;
  std::deque<Inflight> inflight;
  std::uint64_t seq = 0;
  // Receive parser (server -> client frames, unmasked).
  unsigned char hdr[14];
  std::size_t hdr_len = 0, hdr_need = 2;
  std::uint64_t frame_left = 0;  // payload bytes left in the current frame
  unsigned frame_op = 0;
  bool frame_fin = false, in_message = false;
  std::size_t msg_off = 0;       // payload bytes of the current message so far
  unsigned char expect_prefix[kPrefix];
  std::string control;           // payload of a control frame
  std::vector<unsigned char> raw_expect;  // raw mode: the bytes sent and not yet echoed
  std::size_t raw_expect_head = 0, raw_got = 0;
  int refused = 0;               // connect() refused: retried (a server still starting up)
  std::int64_t retry_at = 0;
};

int ep = -1;
std::vector<Conn> conns;
Histogram hist;
std::int64_t now = 0, measure_start = 0, measure_end = 0;
bool measuring = false;
std::uint64_t measured_msgs = 0, measured_bytes = 0;

void kill_conn(Conn& c, const char* why) {
  if (c.phase == Phase::dead) return;
  error("connection %d: %s", c.id, why);
  c.phase = Phase::dead;
  if (c.fd < 0) return;
  epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
}

void set_out_interest(Conn& c, bool want) {
  if (c.want_out == want || c.phase == Phase::dead) return;
  c.want_out = want;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
  ev.data.u32 = static_cast<std::uint32_t>(c.id);
  epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
}

void flush(Conn& c) {
  while (c.out_head < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_head, c.out.size() - c.out_head, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return kill_conn(c, "send failed");
    }
    c.out_head += static_cast<std::size_t>(n);
  }
  if (c.out_head == c.out.size()) c.out.clear(), c.out_head = 0;
  set_out_interest(c, c.out_head < c.out.size());
}

// Appends one masked client frame carrying the next message.
void queue_message(Conn& c) {
  std::uint64_t tag = (std::uint64_t(c.id) << 40) | c.seq++;
  const std::size_t n = opt.size;
  unsigned char h[14];
  std::size_t hl = 2;
  h[0] = static_cast<unsigned char>(0x80 | (opt.text ? 1 : 2));
  if (n < 126) {
    h[1] = static_cast<unsigned char>(0x80 | n);
  } else if (n < 65536) {
    h[1] = 0x80 | 126, h[2] = static_cast<unsigned char>(n >> 8), h[3] = static_cast<unsigned char>(n), hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<unsigned char>(std::uint64_t{n} >> (56 - 8 * i));
    hl = 10;
  }
  std::uint32_t key = static_cast<std::uint32_t>(rnd());
  std::memcpy(h + hl, &key, 4);
  hl += 4;
  const std::size_t start = c.out.size();
  c.out.resize(start + hl + n);
  unsigned char* o = c.out.data() + start;
  std::memcpy(o, h, hl);
  o += hl;
  std::memcpy(o, pattern.data(), n);
  make_prefix(tag, o);
  if (n < kPrefix) std::memcpy(o, pattern.data(), n);  // tiny messages: no prefix (and no tag check)
  // Mask: 8 bytes at a time, then the tail.
  unsigned char k[4];
  std::memcpy(k, &key, 4);
  std::uint64_t k8 = std::uint64_t{key} | (std::uint64_t{key} << 32);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, o + i, 8);
    v ^= k8;
    std::memcpy(o + i, &v, 8);
  }
  for (; i < n; ++i) o[i] ^= k[i & 3];
  c.inflight.push_back(Inflight{now, tag, hl + n});
  if (opt.raw) c.raw_expect.insert(c.raw_expect.end(), c.out.begin() + static_cast<long>(start), c.out.end());
}

void message_done(Conn& c) {
  const Inflight& f = c.inflight.front();
  if (measuring) {
    hist.add(now - f.sent_ns);
    ++measured_msgs;
    measured_bytes += opt.size;
  }
  c.inflight.pop_front();
  queue_message(c);
}

// Checks `n` payload bytes at offset c.msg_off of the current echoed message.
bool check_payload(Conn& c, const unsigned char* p, std::size_t n) {
  std::size_t off = c.msg_off;
  if (off + n > opt.size) return false;
  std::size_t i = 0;
  if (opt.size >= kPrefix)
    for (; i < n && off + i < kPrefix; ++i)
      if (p[i] != c.expect_prefix[off + i]) return false;
  return std::memcmp(p + i, pattern.data() + off + i, n - i) == 0;
}

void on_control(Conn& c) {
  if (c.frame_op == 0x9) {  // ping: answer with a masked pong
    unsigned char h[6] = {0x8A, static_cast<unsigned char>(0x80 | c.control.size()), 0, 0, 0, 0};
    c.out.insert(c.out.end(), h, h + 6);  // a zero masking key: the payload as it is
    c.out.insert(c.out.end(), c.control.begin(), c.control.end());
  } else if (c.frame_op == 0x8) {
    unsigned code = c.control.size() >= 2 ? unsigned(static_cast<unsigned char>(c.control[0])) << 8 |
                                                static_cast<unsigned char>(c.control[1])
                                          : 1005;
    error("connection %d: close frame from the server, code %u", c.id, code);
    kill_conn(c, "closed by the server");
  }
}

void feed_ws(Conn& c, const unsigned char* p, std::size_t n) {
  while (n > 0 && c.phase == Phase::open) {
    if (c.hdr_len < c.hdr_need) {
      std::size_t take = std::min(n, c.hdr_need - c.hdr_len);
      std::memcpy(c.hdr + c.hdr_len, p, take);
      c.hdr_len += take, p += take, n -= take;
      if (c.hdr_len < c.hdr_need) return;
      if (c.hdr_need == 2) {
        if (c.hdr[1] & 0x80) return kill_conn(c, "masked frame from the server");
        unsigned len7 = c.hdr[1] & 0x7F;
        c.hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        if (c.hdr_len < c.hdr_need) continue;
      }
      unsigned len7 = c.hdr[1] & 0x7F;
      std::uint64_t len = len7;
      if (len7 == 126) len = std::uint64_t{c.hdr[2]} << 8 | c.hdr[3];
      if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | c.hdr[2 + i];
      }
      c.frame_left = len;
      c.frame_op = c.hdr[0] & 0x0F;
      c.frame_fin = (c.hdr[0] & 0x80) != 0;
      if (c.hdr[0] & 0x70) return kill_conn(c, "RSV bits from the server");
      if (c.frame_op >= 8) {
        c.control.clear();
      } else {
        unsigned want = opt.text ? 1u : 2u;
        if (!c.in_message) {
          if (c.frame_op != want) return kill_conn(c, "wrong opcode in the echo");
          if (c.inflight.empty()) return kill_conn(c, "an echo nobody asked for");
          c.in_message = true;
          c.msg_off = 0;
          make_prefix(c.inflight.front().tag, c.expect_prefix);
        } else if (c.frame_op != 0) {
          return kill_conn(c, "a new message inside a fragmented one");
        }
      }
    }
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, c.frame_left));
    if (c.frame_op >= 8) {
      c.control.append(reinterpret_cast<const char*>(p), take);
    } else if (take > 0) {
      if (!check_payload(c, p, take)) {
        error("MISMATCH in an echoed payload on connection %d at offset %zu", c.id, c.msg_off);
        return kill_conn(c, "payload mismatch");
      }
      c.msg_off += take;
    }
    c.frame_left -= take, p += take, n -= take;
    if (c.frame_left == 0) {
      c.hdr_len = 0, c.hdr_need = 2;
      if (c.frame_op >= 8) {
        on_control(c);
      } else if (c.frame_fin) {
        c.in_message = false;
        if (c.msg_off != opt.size) return kill_conn(c, "echo of the wrong length");
        message_done(c);
      }
    }
  }
}

void feed_raw(Conn& c, const unsigned char* p, std::size_t n) {
  if (n > c.raw_expect.size() - c.raw_expect_head) return kill_conn(c, "more bytes than sent");
  if (std::memcmp(p, c.raw_expect.data() + c.raw_expect_head, n) != 0) {
    error("MISMATCH in the echoed bytes on connection %d", c.id);
    return kill_conn(c, "byte mismatch");
  }
  c.raw_expect_head += n;
  c.raw_got += n;
  while (!c.inflight.empty() && c.raw_got >= c.inflight.front().wire) {
    c.raw_got -= c.inflight.front().wire;
    message_done(c);
  }
  if (c.raw_expect_head > (1u << 20) && c.raw_expect_head * 2 > c.raw_expect.size()) {
    c.raw_expect.erase(c.raw_expect.begin(), c.raw_expect.begin() + static_cast<long>(c.raw_expect_head));
    c.raw_expect_head = 0;
  }
}

void start_traffic(Conn& c) {
  if (opt.idle) return;
  for (int i = 0; i < opt.depth; ++i) queue_message(c);
}

void on_handshake_bytes(Conn& c, const unsigned char* p, std::size_t n) {
  c.head.append(reinterpret_cast<const char*>(p), n);
  std::size_t end = c.head.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.head.size() > 16384) kill_conn(c, "handshake answer too long");
    return;
  }
  std::string h = c.head.substr(0, end + 2);
  std::string rest = c.head.substr(end + 4);
  if (h.compare(0, 13, "HTTP/1.1 101 ") != 0) return kill_conn(c, "handshake not answered with 101");
  std::string accept = base64(Sha1().digest(c.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
  bool ok = false;
  for (std::size_t pos = h.find("\r\n"); pos != std::string::npos && pos + 2 < h.size();) {
    std::size_t eol = h.find("\r\n", pos + 2);
    std::string line = h.substr(pos + 2, eol - pos - 2);
    std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
      if (name == "sec-websocket-accept") ok = value == accept;
    }
    pos = eol;
  }
  if (!ok) return kill_conn(c, "wrong or missing Sec-WebSocket-Accept");
  c.head.clear();
  c.head.shrink_to_fit();
  c.phase = Phase::open;
  start_traffic(c);
  if (!rest.empty()) feed_ws(c, reinterpret_cast<const unsigned char*>(rest.data()), rest.size());
}

void on_connected(Conn& c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err == ECONNREFUSED && c.refused < 40) {  // retried by connect_range() in 50 ms
    ++c.refused;
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    c.retry_at = now + 50000000;
    return;
  }
  if (err != 0) return kill_conn(c, err == ECONNREFUSED ? "connect refused (40 times)" : "connect failed");
  if (opt.raw) {
    c.phase = Phase::open;
    start_traffic(c);
    return;
  }
  std::string nonce;
  for (int i = 0; i < 16; ++i) nonce += static_cast<char>(rnd() & 0xFF);
  c.key = base64(nonce);
  std::string req = "GET /bench HTTP/1.1\r\nHost: " + opt.host + ":" + std::to_string(opt.port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + c.key +
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  c.out.insert(c.out.end(), req.begin(), req.end());
  c.phase = Phase::handshake;
}

std::vector<unsigned char> rbuf(256 * 1024);

void on_event(Conn& c, std::uint32_t events) {
  if (c.phase == Phase::dead) return;
  if (c.phase == Phase::connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    on_connected(c);
    if (c.phase != Phase::dead && c.fd >= 0) flush(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    // Several reads per wakeup at most, so one busy connection cannot starve the others.
    for (int round = 0; round < 4 && c.phase != Phase::dead; ++round) {
      ssize_t n = recv(c.fd, rbuf.data(), rbuf.size(), 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return kill_conn(c, n == 0 ? "closed by the peer" : "recv failed");
      const unsigned char* p = rbuf.data();
      if (c.phase == Phase::handshake) on_handshake_bytes(c, p, static_cast<std::size_t>(n));
      else if (opt.raw) feed_raw(c, p, static_cast<std::size_t>(n));
      else feed_ws(c, p, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < rbuf.size()) break;
    }
  }
  if (c.phase != Phase::dead) flush(c);
}

bool open_conn(Conn& c, const sockaddr_storage& addr, socklen_t alen) {
  c.fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return false;
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), alen) != 0 && errno != EINPROGRESS) {
    close(c.fd);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u32 = static_cast<std::uint32_t>(c.id);
  c.want_out = true;
  epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  return true;
}

int opened(std::size_t from) {
  int n = 0;
  for (std::size_t i = from; i < conns.size(); ++i) n += conns[i].phase == Phase::open;
  return n;
}
int dead(std::size_t from) {
  int n = 0;
  for (std::size_t i = from; i < conns.size(); ++i) n += conns[i].phase == Phase::dead;
  return n;
}

// Runs the loop until `until_ns`, or until stop() says so.
template <class Stop>
void loop(std::int64_t until_ns, Stop stop) {
  epoll_event evs[256];
  while ((now = now_ns()) < until_ns && !stop()) {
    int timeout = static_cast<int>((until_ns - now) / 1000000) + 1;
    int n = epoll_wait(ep, evs, 256, timeout > 100 ? 100 : timeout);
    now = now_ns();
    if (measuring && now >= measure_end) return;
    for (int i = 0; i < n; ++i) on_event(conns[evs[i].data.u32], evs[i].events);
  }
}

void usage() {
  std::fprintf(stderr,
               "usage: loadgen --port N [--host H] [--conns C] [--depth D] [--size S] [--text]\n"
               "               [--seconds T] [--warmup W] [--stat-pid PID] [--raw | --idle]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--host") opt.host = val();
    else if (a == "--port") opt.port = std::atoi(val());
    else if (a == "--conns") opt.conns = std::atoi(val());
    else if (a == "--depth") opt.depth = std::atoi(val());
    else if (a == "--size") opt.size = static_cast<std::size_t>(std::atoll(val()));
    else if (a == "--seconds") opt.seconds = std::atof(val());
    else if (a == "--warmup") opt.warmup = std::atof(val());
    else if (a == "--stat-pid") opt.stat_pid = std::atoi(val());
    else if (a == "--text") opt.text = true;
    else if (a == "--raw") opt.raw = true;
    else if (a == "--idle") opt.idle = true;
    else usage();
  }
  if (opt.port <= 0 || opt.conns <= 0 || opt.depth <= 0 || opt.size == 0) usage();
  rng_state ^= static_cast<std::uint64_t>(now_ns()) * 0x9E3779B97F4A7C15ull;

  rlimit rl;  // 1000 connections need more descriptors than the usual soft limit of 1024
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(opt.host.c_str(), std::to_string(opt.port).c_str(), &hints, &res) != 0 || !res) {
    std::fprintf(stderr, "loadgen: cannot resolve %s\n", opt.host.c_str());
    return 2;
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
  socklen_t alen = res->ai_addrlen;
  freeaddrinfo(res);

  make_pattern();
  ep = epoll_create1(EPOLL_CLOEXEC);
  const int total = opt.idle ? opt.conns + 1 : opt.conns;
  conns.resize(static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) conns[static_cast<std::size_t>(i)].id = i;

  // Connects conns [from, to), at most 64 handshakes at a time; false after 30 s.
  auto connect_range = [&](std::size_t from, std::size_t to) {
    std::size_t next = from;
    const std::int64_t give_up = now_ns() + 30000000000LL;
    while (true) {
      int busy = 0;
      for (std::size_t i = from; i < next; ++i) busy += conns[i].phase != Phase::open && conns[i].phase != Phase::dead;
      for (std::size_t i = from; i < next; ++i) {
        Conn& c = conns[i];
        if (c.phase == Phase::connecting && c.fd < 0 && now_ns() >= c.retry_at && !open_conn(c, addr, alen))
          kill_conn(c, "socket/connect failed");
      }
      while (next < to && busy < 64) {
        if (!open_conn(conns[next], addr, alen)) kill_conn(conns[next], "socket/connect failed");
        ++next, ++busy;
      }
      if (next == to && busy == 0) return true;
      if (now_ns() > give_up) return false;
      loop(now_ns() + 10000000, [] { return false; });
    }
  };

  char json[1024];
  if (opt.idle) {
    connect_range(0, 1);
    loop(now_ns() + 300000000, [] { return false; });
    long rss0 = opt.stat_pid ? proc_rss_kib(opt.stat_pid) : -1;
    bool ok = connect_range(1, conns.size());
    loop(now_ns() + 500000000, [] { return false; });  // let the server settle
    long rss1 = opt.stat_pid ? proc_rss_kib(opt.stat_pid) : -1;
    int open_n = opened(1);
    if (!ok) error("%d connections not open after 30 s", total - 1 - open_n);
    double per = (rss0 >= 0 && rss1 >= 0 && open_n > 0) ? double(rss1 - rss0) / open_n : -1;
    loop(now_ns() + static_cast<std::int64_t>(opt.seconds * 1e9), [] { return false; });
    open_n = opened(1);
    std::snprintf(json, sizeof json,
                  "{\"mode\":\"idle\",\"conns\":%d,\"open\":%d,\"server_rss_before_kib\":%ld,"
                  "\"server_rss_after_kib\":%ld,\"server_kib_per_conn\":%.3f,\"errors\":%ld}",
                  opt.conns, open_n, rss0, rss1, per, errors);
    std::printf("%s\n", json);
    std::fflush(stdout);
    for (Conn& c : conns)
      if (c.phase != Phase::dead) close(c.fd);
    return errors ? 1 : 0;
  }

  if (!connect_range(0, conns.size())) error("%d connections not open after 30 s", total - opened(0));
  // Warm-up, then the measured window.
  loop(now_ns() + static_cast<std::int64_t>(opt.warmup * 1e9), [] { return false; });
  double cpu0 = opt.stat_pid ? proc_cpu_seconds(opt.stat_pid) : -1;
  double gen0 = self_cpu_seconds();
  measure_start = now_ns();
  measure_end = measure_start + static_cast<std::int64_t>(opt.seconds * 1e9);
  measuring = true;
  loop(measure_end, [] { return false; });
  measuring = false;
  std::int64_t t1 = now_ns();
  double cpu1 = opt.stat_pid ? proc_cpu_seconds(opt.stat_pid) : -1;
  double gen1 = self_cpu_seconds();
  double secs = static_cast<double>(t1 - measure_start) / 1e9;
  int lost = dead(0);
  double server_cpu = (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
  double per_msg = (server_cpu >= 0 && measured_msgs) ? server_cpu * 1e6 / double(measured_msgs) : -1;
  if (measured_msgs == 0) error("no message echoed in the measured window");
  std::snprintf(json, sizeof json,
                "{\"mode\":\"%s\",\"conns\":%d,\"depth\":%d,\"size\":%zu,\"text\":%s,\"seconds\":%.3f,"
                "\"messages\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_us\":%.2f,\"p99_us\":%.2f,"
                "\"errors\":%ld,\"conns_lost\":%d,\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.4f,"
                "\"gen_cpu_s\":%.3f}",
                opt.raw ? "raw" : "ws", opt.conns, opt.depth, opt.size, opt.text ? "true" : "false", secs,
                static_cast<unsigned long long>(measured_msgs), double(measured_msgs) / secs,
                double(measured_bytes) / secs / 1e6, hist.quantile(0.5) / 1e3, hist.quantile(0.99) / 1e3, errors,
                lost, server_cpu, per_msg, gen1 - gen0);
  std::printf("%s\n", json);
  std::fflush(stdout);
  for (Conn& c : conns)
    if (c.phase != Phase::dead) close(c.fd);
  return errors ? 1 : 0;
}
