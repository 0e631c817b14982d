// Helpers for the live tests (test_hostile.cpp, test_conformance.cpp; test_net.cpp takes the
// basics): a ws::Server on its own thread, a raw TCP peer that can misbehave on purpose, a
// watchdog, fd and RSS counters (on Windows: open sockets and the working set).
//
// Every wait is bounded. The server binds 127.0.0.1 port 0. The same code runs under both
// drivers (the Makefile builds each suite once per driver) and under the sanitizers.
// Failed checks never throw (the suites also build with -fno-exceptions): LIVE_REQUIRE checks,
// then returns from the test case.
#ifndef WS_TEST_LIVE_HELPERS_HPP
#define WS_TEST_LIVE_HELPERS_HPP

#include <doctest/doctest.h>

#include "../websocket.hpp"

#if defined(_WIN32)
#include <psapi.h>  // after websocket.hpp's <windows.h>; K32GetProcessMemoryInfo is in kernel32
#else
#include <dirent.h>
#include <unistd.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#define LIVE_REQUIRE(...)                                        \
  do {                                                           \
    const bool live_required_ = static_cast<bool>(__VA_ARGS__);  \
    CHECK_MESSAGE(live_required_, "required: " #__VA_ARGS__);    \
    if (!live_required_) return;                                 \
  } while (0)

// Sanitizer builds: RSS is dominated by shadow memory and quarantine, so RSS bounds are
// checked only without them (LeakSanitizer checks leaks at exit instead).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIVE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LIVE_SANITIZED 1
#endif
#endif
#ifndef LIVE_SANITIZED
#define LIVE_SANITIZED 0
#endif

namespace live {

#if defined(WEBSOCKET_USE_BLOCKING)
constexpr bool kBlocking = true;
constexpr const char* kDriver = "blocking";
#else
constexpr bool kBlocking = false;
constexpr const char* kDriver = "poll";
#endif

inline const bool kUnbufferedStdout = [] { return std::setvbuf(stdout, nullptr, _IONBF, 0) == 0; }();

inline std::int64_t now_ms() { return ws::net::now_ms(); }
inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

template <class F>
bool eventually(F&& done, int timeout_ms = 5000) {
  const std::int64_t deadline = now_ms() + timeout_ms;
  while (!done()) {
    if (now_ms() >= deadline) return done();
    sleep_ms(2);
  }
  return true;
}

// ---- watchdog: a test case running longer than its limit ends the run (exit 3), naming it --

class Watchdog {
 public:
  static Watchdog& instance() {
    static Watchdog w;
    return w;
  }
  void arm(const char* name, int seconds) {
    std::lock_guard<std::mutex> g(mu_);
    name_ = name;
    limit_s_ = seconds;
    deadline_ = now_ms() + seconds * 1000;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard<std::mutex> g(mu_);
    deadline_ = -1;
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  Watchdog() : thread_([this] { watch(); }) {}
  void watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      if (deadline_ >= 0 && now_ms() >= deadline_) {
        std::fprintf(stderr, "\nwatchdog: test case \"%s\" still running after %d s: exiting\n",
                     name_.c_str(), limit_s_);
        std::fflush(stderr);
        // Not abort(): doctest's SIGABRT handler, run on this thread while the test thread is
        // mid-assert, can hang. _Exit runs no handlers; the missing summary marks the failure.
        std::_Exit(3);
      }
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::string name_;
  std::int64_t deadline_ = -1;
  int limit_s_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

// Arms the Watchdog for every test case of a suite, LimitS seconds each:
//   REGISTER_LISTENER("net-watchdog", 1, live::WatchdogListener<30>);
template <int LimitS>
struct WatchdogListener : doctest::IReporter {
  explicit WatchdogListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& d) override { arm(d); }
  void test_case_reenter(const doctest::TestCaseData& d) override { arm(d); }
  void test_case_end(const doctest::CurrentTestCaseStats&) override { Watchdog::instance().disarm(); }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
  static void arm(const doctest::TestCaseData& d) { Watchdog::instance().arm(d.m_name, LimitS); }
};

struct Watch {
  Watch(const char* name, int seconds) { Watchdog::instance().arm(name, seconds); }
  ~Watch() { Watchdog::instance().disarm(); }
};

// ---- process resources --------------------------------------------------------------------

// Open descriptors. Windows has no fd table the library fills: its kernel objects are sockets
// (and thread handles), and GetProcessHandleCount is a stub under Wine (always 0). So there
// this counts the process's open sockets: handle values are multiples of 4, allocated low
// first, and getsockopt succeeds only on a socket.
inline int open_fds() {
  int n = 0;
#if defined(_WIN32)
  for (std::uintptr_t h = 4; h < (std::uintptr_t{1} << 20); h += 4) {
    int type = 0;
    int len = sizeof type;
    char* out = reinterpret_cast<char*>(&type);
    if (getsockopt(static_cast<SOCKET>(h), SOL_SOCKET, SO_TYPE, out, &len) == 0) ++n;
  }
#else
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    --n;  // the DIR's own descriptor
  }
#endif
  return n;
}

// Resident set size (Windows: the working set).
inline std::size_t rss_bytes() {
#if defined(_WIN32)
  PROCESS_MEMORY_COUNTERS pmc{};
  pmc.cb = sizeof pmc;
  if (!K32GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return 0;
  return pmc.WorkingSetSize;
#else
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
#endif
}

// ---- a server on its own thread -------------------------------------------------------------

// Short timeouts, small limits: the hostile tests reach them quickly.
inline ws::ServerOptions small_options() {
  ws::ServerOptions o;
  o.handshake_timeout_ms = 300;
  o.close_timeout_ms = 300;
  o.send_timeout_ms = 500;
  o.limits.max_message = 64 * 1024;
  o.limits.max_frame = 64 * 1024;
  o.limits.max_send_buffer = 256 * 1024;
  return o;
}

struct Closed {
  std::uint16_t code;
  std::string reason;
};

// Echoes every message; records each on_close. Set handlers before start().
class LiveServer {
 public:
  explicit LiveServer(ws::ServerOptions o = small_options()) : server(std::move(o)) {
    server.on_open([this](ws::Session& s) {
      ++opens;
      if (on_open_extra) on_open_extra(s);
    });
    server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });
    server.on_close([this](ws::Session&, std::uint16_t code, std::string_view reason) {
      std::lock_guard<std::mutex> g(mu);
      closes.push_back({code, std::string(reason)});
    });
  }
  ~LiveServer() { stop(); }

  bool start() {
    if (ws::Error e = server.listen(0, "127.0.0.1")) {
      MESSAGE("listen: " << e.message());
      return false;
    }
    thread_ = std::thread([this] { server.run(); });
    return true;
  }
  void stop() {
    if (!thread_.joinable()) return;
    server.stop();
    thread_.join();
  }
  std::uint16_t port() const { return server.port(); }
  std::size_t close_count() {
    std::lock_guard<std::mutex> g(mu);
    return closes.size();
  }
  Closed last_close() {
    std::lock_guard<std::mutex> g(mu);
    return closes.empty() ? Closed{0, ""} : closes.back();
  }

  ws::Server server;
  std::function<void(ws::Session&)> on_open_extra;
  std::atomic<int> opens{0};
  std::mutex mu;
  std::vector<Closed> closes;

 private:
  std::thread thread_;
};

// ---- a raw TCP peer -------------------------------------------------------------------------

constexpr const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 §1.3's sample

inline std::string request(const std::string& path = "/", const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: " + std::string(kKey) +
         "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n";
}

// A client frame: masked with a fixed key unless `masked` is false. `len_override` forces the
// announced length (for frames that lie about it).
inline std::string frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         bool masked = true, std::uint64_t len_override = UINT64_MAX) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | opcode);
  const std::uint64_t len = len_override == UINT64_MAX ? payload.size() : len_override;
  const char m = masked ? static_cast<char>(0x80) : 0;
  if (len < 126) {
    f += static_cast<char>(m | static_cast<char>(len));
  } else if (len <= 0xFFFF) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len & 0xFF);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((len >> (8 * i)) & 0xFF);
  }
  const std::uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ (masked ? key[i & 3] : 0));
  return f;
}

inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xFF);
  p.append(reason.data(), reason.size());
  return p;
}

struct ServerFrame {
  bool fin = false;
  std::uint8_t opcode = 0;
  bool masked = false;
  std::string payload;
  std::uint16_t close_code() const {
    return payload.size() >= 2 ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                            static_cast<std::uint8_t>(payload[1]))
                               : 0;
  }
};

class RawPeer {
 public:
  bool connect(std::uint16_t port, int timeout_ms = 3000) {
    return !ws::net::connect("127.0.0.1", port, timeout_ms, sock);
  }
  bool is_open() const { return static_cast<bool>(sock); }

  // Everything, within timeout_ms. False if the peer closed or the time ran out.
  bool send_all(std::string_view data, int timeout_ms = 3000) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    while (!data.empty()) {
      long n = sock.send(data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n != ws::net::kWouldBlock) return false;
      const std::int64_t left = deadline - now_ms();
      if (left <= 0) return false;
      sock.wait(true, static_cast<int>(left));
    }
    return true;
  }

  // Waits up to timeout_ms for bytes and appends what arrived to `in`. Returns false once the
  // peer closed (EOF or reset): `eof` is then set.
  bool read_for(int timeout_ms) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    char buf[65536];
    bool got = false;
    while (!eof) {
      long n = sock.recv(buf, sizeof buf);
      if (n > 0) {
        in.append(buf, static_cast<std::size_t>(n));
        got = true;
        continue;
      }
      if (n == ws::net::kWouldBlock && got) break;
      if (n == 0 || n == ws::net::kFailed) {
        eof = true;
        reset = n != 0;
        break;
      }
      const std::int64_t left = deadline - now_ms();
      if (left <= 0) break;
      sock.wait(false, static_cast<int>(left));
    }
    return !eof;
  }

  // Reads until `done(in)` or EOF or the timeout.
  template <class F>
  bool read_until(F&& done, int timeout_ms = 3000) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    while (!done(in)) {
      const std::int64_t left = deadline - now_ms();
      if (eof || left <= 0) return done(in);
      read_for(static_cast<int>(left < 50 ? left : 50));
    }
    return true;
  }

  // Waits for the server to close the connection; returns the milliseconds it took, or -1.
  std::int64_t wait_closed(int timeout_ms) {
    const std::int64_t start = now_ms();
    read_until([&](const std::string&) { return eof; }, timeout_ms);
    return eof ? now_ms() - start : -1;
  }

  // The HTTP head the server sent (consumed from `in`), or "" when none arrived in time.
  std::string read_head(int timeout_ms = 3000) {
    read_until([](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; }, timeout_ms);
    std::size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) return "";
    std::string head = in.substr(0, end + 4);
    in.erase(0, end + 4);
    return head;
  }
  static int status_of(const std::string& head) {
    return head.size() >= 12 ? std::atoi(head.substr(9, 3).c_str()) : 0;
  }

  // The opening handshake; true when the server answered 101.
  bool handshake(const std::string& path = "/", const std::string& extra = "") {
    return send_all(request(path, extra)) && status_of(read_head()) == 101;
  }

  // The next whole frame the server sent, within timeout_ms.
  bool next_frame(ServerFrame& f, int timeout_ms = 3000) {
    std::size_t need = 0;
    auto parse = [&](const std::string& s) {
      if (s.size() < 2) return false;
      const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
      std::size_t at = 2;
      std::uint64_t len = p[1] & 0x7F;
      if (len == 126) {
        if (s.size() < 4) return false;
        len = (std::uint64_t{p[2]} << 8) | p[3];
        at = 4;
      } else if (len == 127) {
        if (s.size() < 10) return false;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
        at = 10;
      }
      if (p[1] & 0x80) at += 4;
      need = at + static_cast<std::size_t>(len);
      if (s.size() < need) return false;
      f.fin = (p[0] & 0x80) != 0;
      f.opcode = p[0] & 0x0F;
      f.masked = (p[1] & 0x80) != 0;
      f.payload = s.substr(at, static_cast<std::size_t>(len));
      if (f.masked)
        for (std::size_t i = 0; i < f.payload.size(); ++i)
          f.payload[i] = static_cast<char>(f.payload[i] ^ s[at - 4 + (i & 3)]);
      return true;
    };
    if (!read_until(parse, timeout_ms)) return false;
    in.erase(0, need);
    return true;
  }

  // Abortive close: SO_LINGER 0 makes close() send a RST (and leaves no TIME_WAIT).
  void reset_now() {
    linger l{};
    l.l_onoff = 1;
    l.l_linger = 0;
    setsockopt(sock.handle(), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&l), sizeof l);
    sock.close();
  }

  ws::net::Socket sock;
  std::string in;
  bool eof = false;
  bool reset = false;
};

// A normal client is still served: connect, echo one message, close cleanly.
inline bool served(std::uint16_t port, const std::string& path = "/") {
  ws::ClientOptions o;
  o.connect_timeout_ms = 3000;
  o.send_timeout_ms = 3000;
  o.close_timeout_ms = 2000;
  ws::Client c;
  if (ws::Error e = c.connect("ws://127.0.0.1:" + std::to_string(port) + path, o)) {
    MESSAGE("normal client: connect: " << e.message());
    return false;
  }
  if (c.send_text("still served")) return false;
  ws::Message m;
  if (ws::Error e = c.receive(m, 3000)) {
    MESSAGE("normal client: receive: " << e.message());
    return false;
  }
  c.close();
  return m.is_text() && m.data == "still served";
}

}  // namespace live

#endif  // WS_TEST_LIVE_HELPERS_HPP
