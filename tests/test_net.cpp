// Tests for websocket.hpp §4-§6 (sockets, drivers, ws::Client, ws::Server): a client and a
// server in one process, talking over loopback.
//
// The same file runs under both drivers (the Makefile builds it once per driver), so every
// expectation holds for the poll() loop and for blocking sockets alike, except where a test
// says otherwise. Rules every test keeps:
//   - servers bind port 0 on 127.0.0.1 (or ::1): no fixed ports, no outside network;
//   - every wait is bounded: receives have timeouts, and a watchdog ends the run (exit 3,
//     naming the test case) when a test case runs longer than kTestCaseLimitS: a hung peer
//     fails the suite, never hangs it;
//   - a server runs on its own thread inside a TestServer, which stops and joins it when the
//     test case ends, even on failure.
// REQUIRE throws, which -fno-exceptions builds cannot: LIVE_REQUIRE checks, then returns.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "live_helpers.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

// The fixture shared with the live suites (tests/live_helpers.hpp).
using live::eventually;  // polls `done` every 2 ms until it returns true or timeout_ms passed
using live::kBlocking;
using live::now_ms;
using live::sleep_ms;

// For messages (doctest prints an enum as its number).
const char* errc_name(ws::Errc e) {
  static const char* const names[] = {
      "ok", "http_line_too_long", "http_head_too_large", "http_too_many_headers",
      "http_malformed", "http_version", "handshake_rejected", "handshake_failed", "bad_url",
      "bad_argument", "protocol_error", "invalid_payload", "message_too_big", "not_open",
      "send_buffer_full", "invalid_utf8", "invalid_close", "control_too_big", "random_failed",
      "resolve_failed", "connect_failed", "socket_error", "timeout", "closed"};
  auto i = static_cast<std::size_t>(e);
  return i < sizeof names / sizeof names[0] ? names[i] : "Errc(?)";
}

// ---- watchdog: a test case that runs too long ends the run, naming the test ------------------

// Every test case: 30 s.
REGISTER_LISTENER("net-watchdog", 1, live::WatchdogListener<30>);

// ---- a server on its own thread ---------------------------------------------------------------

// Short timeouts, so that a test that fails does not wait long for anything.
ws::ServerOptions server_options() {
  ws::ServerOptions o;
  o.handshake_timeout_ms = 5000;
  o.close_timeout_ms = 1000;
  o.send_timeout_ms = 5000;
  return o;
}

ws::ClientOptions client_options() {
  ws::ClientOptions o;
  o.connect_timeout_ms = 5000;
  o.send_timeout_ms = 5000;
  o.close_timeout_ms = 2000;
  return o;
}

// Declare it after the state its handlers use (so it stops first) and before the clients (so
// they close while the server still answers).
struct TestServer {
  ws::Server server;
  std::thread thread;
  std::string host = "127.0.0.1";
  ws::Error run_result;  // written by the server thread; read after the join

  explicit TestServer(ws::ServerOptions o = server_options()) : server(std::move(o)) {}
  ~TestServer() { stop(); }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  // Listens on a free port of `listen_host` and runs the server on a thread.
  bool start(const std::string& listen_host = "127.0.0.1") {
    host = listen_host;
    ws::Error e = server.listen(0, host);
    CHECK_MESSAGE(!e, ("listen(0, \"" + host + "\"): " + e.message()));
    if (e) return false;
    thread = std::thread([this] { run_result = server.run(); });
    return true;
  }
  void stop() {
    if (!thread.joinable()) return;
    server.stop();
    thread.join();
    CHECK_MESSAGE(!run_result, (std::string("run(): ") + run_result.message()));
  }
  std::uint16_t port() const { return server.port(); }
  std::string url(const std::string& path = "/") const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return "ws://" + h + ":" + std::to_string(port()) + path;
  }
};

void echo_handler(ws::Server& server) {
  server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });
}

bool connect(ws::Client& c, const std::string& url, const ws::ClientOptions& o = client_options()) {
  ws::Error e = c.connect(url, o);
  CHECK_MESSAGE(!e, ("connect(" + url + "): " + e.message()));
  return !e;
}

// Receives the next text or binary message (pongs are skipped).
ws::Error receive_data(ws::Client& c, ws::Message& m, int timeout_ms = 5000) {
  const std::int64_t deadline = now_ms() + timeout_ms;
  while (true) {
    const std::int64_t left = deadline - now_ms();
    ws::Error e = c.receive(m, static_cast<int>(left > 0 ? left : 0));
    if (e || m.type != ws::EventType::pong) return e;
  }
}

// Receives until the connection is closed (close_code() then says why). False on timeout.
bool receive_until_closed(ws::Client& c, int timeout_ms = 5000) {
  const std::int64_t deadline = now_ms() + timeout_ms;
  ws::Message m;
  while (true) {
    const std::int64_t left = deadline - now_ms();
    if (left <= 0) return false;
    ws::Error e = c.receive(m, static_cast<int>(left));
    if (e.code == ws::Errc::closed) return true;
    if (e) return false;
  }
}

// A fresh client sends one message to `url` and gets it back.
bool echo_works(const std::string& url) {
  ws::Client c;
  if (c.connect(url, client_options())) return false;
  if (c.send_text("still there?")) return false;
  ws::Message m;
  if (receive_data(c, m)) return false;
  return m.data == "still there?" && !c.close();
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(static_cast<std::uint8_t>((i * 131u + (i >> 13) + seed) & 0xFFu));
  return s;
}

std::string text_pattern(std::size_t n) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = alphabet[(i * 7u + i / 61u) % (sizeof alphabet - 1)];
  return s;
}

// ---- a hand-driven peer on a raw socket (ws::net) -----------------------------------------------

struct Frame {
  bool fin = false;
  unsigned opcode = 0;
  bool masked = false;
  std::string payload;
  unsigned close_code() const {
    return payload.size() >= 2 ? (static_cast<unsigned>(static_cast<std::uint8_t>(payload[0])) << 8) |
                                     static_cast<std::uint8_t>(payload[1])
                               : 0u;
  }
  std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : std::string(); }
};

// A client frame (masked, RFC 6455 §5.3) with a fixed key.
std::string client_frame(unsigned opcode, std::string_view payload, bool fin = true) {
  static const std::uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  std::string f;
  f += static_cast<char>((fin ? 0x80u : 0u) | (opcode & 0x0Fu));
  const std::uint64_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80u | static_cast<unsigned>(n));
  } else if (n <= 0xFFFF) {
    f += static_cast<char>(0x80u | 126u);
    f += static_cast<char>((n >> 8) & 0xFF);
    f += static_cast<char>(n & 0xFF);
  } else {
    f += static_cast<char>(0x80u | 127u);
    for (int shift = 56; shift >= 0; shift -= 8) f += static_cast<char>((n >> shift) & 0xFF);
  }
  f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ key[i % 4]);
  return f;
}

constexpr const char* kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";       // RFC 6455 §1.3
constexpr const char* kSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // its accept value

std::string upgrade_request(const std::string& path = "/") {
  return "GET " + path +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: " + kSampleKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

struct Raw {
  enum Read { data, eof, timeout, failed };

  ws::net::Socket s;
  std::string in;  // received, not yet consumed

  bool connect(std::uint16_t port, const std::string& host = "127.0.0.1") {
    ws::Error e = ws::net::connect(host, port, 3000, s);
    CHECK_MESSAGE(!e, (std::string("raw connect: ") + e.message()));
    return !e;
  }

  bool send(std::string_view bytes, int timeout_ms = 3000) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    while (!bytes.empty()) {
      long n = s.send(bytes.data(), bytes.size());
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n != ws::net::kWouldBlock) return false;
      const std::int64_t left = deadline - now_ms();
      if (left <= 0 || !s.wait(true, static_cast<int>(left))) return false;
    }
    return true;
  }

  // Waits up to timeout_ms for bytes and appends them to `in`.
  Read read_some(int timeout_ms) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    char buf[65536];
    while (true) {
      const std::int64_t left = deadline - now_ms();
      if (left <= 0 || !s.wait(false, static_cast<int>(left))) return timeout;
      long n = s.recv(buf, sizeof buf);
      if (n > 0) {
        in.append(buf, static_cast<std::size_t>(n));
        return data;
      }
      if (n == 0) return eof;
      if (n != ws::net::kWouldBlock) return failed;  // e.g. a reset
    }
  }

  // Reads until the peer closes the connection (EOF or reset); false on timeout.
  bool read_to_close(int timeout_ms) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    while (true) {
      const std::int64_t left = deadline - now_ms();
      Read r = read_some(static_cast<int>(left > 0 ? left : 0));
      if (r == eof || r == failed) return true;
      if (r == timeout) return false;
    }
  }

  // An HTTP head (through the empty line), taken out of `in`.
  bool read_head(std::string& head, int timeout_ms = 3000) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    while (true) {
      std::size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        head = in.substr(0, end + 4);
        in.erase(0, end + 4);
        return true;
      }
      const std::int64_t left = deadline - now_ms();
      if (left <= 0 || read_some(static_cast<int>(left)) != data) return false;
    }
  }

  // Does the opening handshake by hand; true on a correct 101.
  bool handshake(const std::string& path = "/") {
    if (!send(upgrade_request(path))) return false;
    std::string head;
    if (!read_head(head)) return false;
    const bool ok = head.compare(0, 13, "HTTP/1.1 101 ") == 0 && head.find(kSampleAccept) != std::string::npos;
    CHECK_MESSAGE(ok, ("raw handshake answer: " + head));
    return ok;
  }

  // Takes one complete frame from the front of `in`.
  bool take_frame(Frame& f) {
    if (in.size() < 2) return false;
    auto at = [&](std::size_t i) { return static_cast<std::uint8_t>(in[i]); };
    f.fin = (at(0) & 0x80u) != 0;
    f.opcode = at(0) & 0x0Fu;
    f.masked = (at(1) & 0x80u) != 0;
    std::uint64_t len = at(1) & 0x7Fu;
    std::size_t pos = 2;
    if (len == 126) {
      if (in.size() < 4) return false;
      len = (std::uint64_t{at(2)} << 8) | at(3);
      pos = 4;
    } else if (len == 127) {
      if (in.size() < 10) return false;
      len = 0;
      for (std::size_t i = 2; i < 10; ++i) len = (len << 8) | at(i);
      pos = 10;
    }
    std::size_t key_pos = pos;
    if (f.masked) pos += 4;
    if (in.size() < pos + len) return false;
    f.payload = in.substr(pos, static_cast<std::size_t>(len));
    if (f.masked)
      for (std::size_t i = 0; i < f.payload.size(); ++i)
        f.payload[i] = static_cast<char>(static_cast<std::uint8_t>(f.payload[i]) ^ at(key_pos + i % 4));
    in.erase(0, pos + static_cast<std::size_t>(len));
    return true;
  }

  Read read_frame(Frame& f, int timeout_ms = 3000) {
    const std::int64_t deadline = now_ms() + timeout_ms;
    while (!take_frame(f)) {
      const std::int64_t left = deadline - now_ms();
      Read r = read_some(static_cast<int>(left > 0 ? left : 0));
      if (r != data) return r;
    }
    return data;
  }
};

std::string status_line(const std::string& response) { return response.substr(0, response.find("\r\n")); }

// What a raw client gets for `request` when it reads until the server closes.
std::string exchange(std::uint16_t port, const std::string& request, bool* closed_by_server = nullptr) {
  Raw r;
  if (!r.connect(port)) return {};
  CHECK(r.send(request));
  bool closed = r.read_to_close(5000);
  CHECK_MESSAGE(closed, "the server did not close the connection after its answer");
  if (closed_by_server) *closed_by_server = closed;
  return r.in;
}

// A server frame (unmasked) with a short payload.
std::string server_frame(unsigned opcode, std::string_view payload) {
  std::string f;
  f += static_cast<char>(0x80u | (opcode & 0x0Fu));
  f += static_cast<char>(payload.size() & 0x7F);  // < 126 bytes here
  f += payload;
  return f;
}

std::string close_body(unsigned code, std::string_view reason) {
  std::string b;
  b += static_cast<char>((code >> 8) & 0xFF);
  b += static_cast<char>(code & 0xFF);
  b += reason;
  return b;
}

// A hand-made server for one connection, to misbehave in ways ws::Server never does: it
// answers the opening handshake, runs `then` on the socket, and holds the connection open,
// reading nothing, until the test case ends.
struct FakeServer {
  ws::net::Socket listener;
  std::uint16_t port = 0;
  std::atomic<bool> quit{false};
  std::thread thread;

  bool start(std::function<void(Raw&)> then = {}) {
    ws::Error e = ws::net::listen("127.0.0.1", 0, listener, port);
    CHECK_MESSAGE(!e, (std::string("listen: ") + e.message()));
    if (e) return false;
    thread = std::thread([this, then] {
      if (!listener.wait(false, 5000)) return;
      Raw peer;
      peer.s = ws::net::accept(listener);
      std::string head;
      if (!peer.s || !peer.read_head(head)) return;
      std::size_t k = head.find("Sec-WebSocket-Key: ");
      if (k == std::string::npos) return;
      std::string key = head.substr(k + 19, head.find("\r\n", k) - k - 19);
      peer.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " + ws::accept_key(key) + "\r\n\r\n");
      if (then) then(peer);
      eventually([&] { return quit.load(); }, 20000);
    });
    return true;
  }
  ~FakeServer() {
    quit = true;
    if (thread.joinable()) thread.join();
  }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port) + "/"; }
};

}  // namespace

// =================================================================================================

TEST_CASE("net: port 0 reports a real port") {
  ws::Server server(server_options());
  CHECK(server.port() == 0);
  LIVE_REQUIRE(!server.listen(0, "127.0.0.1"));
  const std::uint16_t port = server.port();
  CHECK(port != 0);
  // Something listens there: a raw TCP connect succeeds (the backlog accepts it, no run()).
  ws::net::Socket s;
  CHECK(!ws::net::connect("127.0.0.1", port, 3000, s));

  // A second server on port 0 gets another port.
  ws::Server other(server_options());
  LIVE_REQUIRE(!other.listen(0, "127.0.0.1"));
  CHECK(other.port() != 0);
  CHECK(other.port() != port);

  // run() without listen() fails instead of serving nothing.
  ws::Server idle(server_options());
  CHECK(idle.run().code == ws::Errc::socket_error);
}

TEST_CASE("net: echo of text and binary at frame-length boundaries") {
  TestServer ts;
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  CHECK(c.is_open());
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{125}, std::size_t{126},
                        std::size_t{127}, std::size_t{65535}, std::size_t{65536}, std::size_t{65537}}) {
    INFO("size " << n);
    const std::string text = text_pattern(n);
    CHECK(!c.send_text(text));
    ws::Message m;
    LIVE_REQUIRE(!receive_data(c, m));
    CHECK(m.type == ws::EventType::text);
    CHECK(m.data.size() == n);
    CHECK(m.data == text);

    const std::string bin = pattern(n, static_cast<unsigned>(n));
    CHECK(!c.send_binary(bin));
    LIVE_REQUIRE(!receive_data(c, m));
    CHECK(m.type == ws::EventType::binary);
    CHECK(m.data.size() == n);
    CHECK(m.data == bin);
  }
  // Messages sent back to back come back in order.
  for (int i = 0; i < 20; ++i) CHECK(!c.send_text("msg " + std::to_string(i)));
  for (int i = 0; i < 20; ++i) {
    ws::Message m;
    LIVE_REQUIRE(!receive_data(c, m));
    CHECK(m.data == "msg " + std::to_string(i));
  }
  CHECK(!c.close());
  CHECK(c.close_code() == ws::close_code::normal);
  CHECK(!c.is_open());
}

TEST_CASE("net: echo of a 16 MiB message") {
  TestServer ts;
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  const std::size_t n = 16u * 1024u * 1024u;  // exactly the default Limits::max_message
  const std::string big = pattern(n, 7);
  const std::int64_t t0 = now_ms();
  CHECK(!c.send_binary(big));
  ws::Message m;
  LIVE_REQUIRE(!receive_data(c, m, 20000));
  MESSAGE("16 MiB round trip: " << now_ms() - t0 << " ms");
  CHECK(m.type == ws::EventType::binary);
  CHECK(m.data.size() == n);
  CHECK((m.data == big));  // not decomposed: doctest would print 16 MiB
  CHECK(!c.close());
}

TEST_CASE("net: fragmented send from the client arrives whole") {
  std::mutex mu;
  std::vector<ws::Message> got;
  TestServer ts;
  ts.server.on_message([&](ws::Session& s, const ws::Message& m) {
    {
      std::lock_guard<std::mutex> g(mu);
      got.push_back(m);
    }
    s.send(m);
  });
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));

  // Text, with a UTF-8 sequence ("é" = C3 A9) split across fragments and a ping in between.
  CHECK(!c.send_fragment(ws::Opcode::text, "Hel", false));
  CHECK(!c.send_fragment(ws::Opcode::text, "lo w\xC3", false));
  CHECK(!c.ping("between"));
  CHECK(!c.send_fragment(ws::Opcode::text, "\xA9rld", true));
  // Binary, with an empty fragment and a large one.
  const std::string big = pattern(100000, 3);
  CHECK(!c.send_fragment(ws::Opcode::binary, "\x01\x02", false));
  CHECK(!c.send_fragment(ws::Opcode::binary, "", false));
  CHECK(!c.send_fragment(ws::Opcode::binary, big, true));
  // A new message may not start before the fragmented one ends.
  CHECK(!c.send_fragment(ws::Opcode::text, "a", false));
  CHECK(c.send_text("x").code == ws::Errc::bad_argument);
  CHECK(!c.send_fragment(ws::Opcode::text, "b", true));

  ws::Message m;
  LIVE_REQUIRE(!c.receive(m, 5000));
  CHECK(m.type == ws::EventType::pong);
  CHECK(m.data == "between");
  LIVE_REQUIRE(!receive_data(c, m));
  CHECK(m.type == ws::EventType::text);
  CHECK(m.data == "Hello w\xC3\xA9rld");
  LIVE_REQUIRE(!receive_data(c, m));
  CHECK(m.type == ws::EventType::binary);
  CHECK((m.data == std::string("\x01\x02", 2) + big));
  LIVE_REQUIRE(!receive_data(c, m));
  CHECK(m.data == "ab");

  std::lock_guard<std::mutex> g(mu);
  LIVE_REQUIRE(got.size() == 3);  // the server saw three whole messages, no pieces
  CHECK(got[0].data == "Hello w\xC3\xA9rld");
  CHECK(got[1].data.size() == big.size() + 2);
  CHECK(got[2].data == "ab");
}

TEST_CASE("net: ping from the client gets a pong") {
  TestServer ts;
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  for (const std::string& payload : {std::string("hello"), std::string(), std::string(125, 'p')}) {
    CHECK(!c.ping(payload));
    ws::Message m;
    LIVE_REQUIRE(!c.receive(m, 5000));
    CHECK(m.type == ws::EventType::pong);
    CHECK(m.data == payload);
  }
  CHECK(c.ping(std::string(126, 'p')).code == ws::Errc::control_too_big);
  // Nothing else arrives: a receive with a timeout returns timeout, in about that time.
  ws::Message m;
  const std::int64_t t0 = now_ms();
  CHECK(c.receive(m, 150).code == ws::Errc::timeout);
  const std::int64_t took = now_ms() - t0;
  CHECK(took >= 140);
  CHECK(took < 2000);
  CHECK(c.is_open());
}

TEST_CASE("net: server-initiated close with 4000 and a reason") {
  std::mutex mu;
  std::vector<std::uint16_t> server_saw;
  TestServer ts;
  ws::Handlers later;  // closes when asked
  std::atomic<int> close_errors{0};
  later.on_message = [&](ws::Session& s, const ws::Message& m) {
    if (m.data == "close me" && s.close(4000, "server says bye")) ++close_errors;
  };
  later.on_close = [&](ws::Session&, std::uint16_t code, std::string_view) {
    std::lock_guard<std::mutex> g(mu);
    server_saw.push_back(code);
  };
  ts.server.route("/later", later);
  ws::Handlers at_once = later;  // closes right in on_open: 101 and close go out together
  at_once.on_open = [](ws::Session& s) { s.close(4000, "not today"); };
  ts.server.route("/at-once", at_once);
  LIVE_REQUIRE(ts.start());

  SUBCASE("after a message") {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url("/later")));
    CHECK(!c.send_text("close me"));
    ws::Message m;
    const std::int64_t t0 = now_ms();
    CHECK(c.receive(m, 5000).code == ws::Errc::closed);
    CHECK(now_ms() - t0 < 3000);
    CHECK(c.close_code() == 4000);
    CHECK(c.close_reason() == "server says bye");
    CHECK(!c.is_open());
    CHECK(c.send_text("too late").code == ws::Errc::closed);
  }
  SUBCASE("in on_open") {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url("/at-once")));  // the handshake itself succeeded
    ws::Message m;
    CHECK(c.receive(m, 5000).code == ws::Errc::closed);
    CHECK(c.close_code() == 4000);
    CHECK(c.close_reason() == "not today");
  }
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return server_saw.size() == 1;
  }));
  std::lock_guard<std::mutex> g(mu);
  if (!server_saw.empty()) CHECK(server_saw[0] == 4000);  // the client echoed the code
  CHECK(close_errors == 0);
}

TEST_CASE("net: client close code and reason reach the server's on_close") {
  struct Closed {
    std::uint16_t code;
    std::string reason;
  };
  std::mutex mu;
  std::vector<Closed> closes;
  TestServer ts;
  echo_handler(ts.server);
  ts.server.on_close([&](ws::Session&, std::uint16_t code, std::string_view reason) {
    std::lock_guard<std::mutex> g(mu);
    closes.push_back({code, std::string(reason)});
  });
  LIVE_REQUIRE(ts.start());

  const std::pair<std::uint16_t, std::string> cases[] = {
      {std::uint16_t{1000}, "done"}, {std::uint16_t{3001}, "custom reason \xE2\x9C\x93"}};
  std::size_t expected = 0;
  for (const auto& k : cases) {
    INFO("code " << k.first);
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url()));
    CHECK(!c.close(k.first, k.second));
    CHECK(c.close_code() == k.first);  // the server echoed it
    CHECK(!c.is_open());
    ++expected;
    CHECK(eventually([&] {
      std::lock_guard<std::mutex> g(mu);
      return closes.size() == expected;
    }));
    std::lock_guard<std::mutex> g(mu);
    LIVE_REQUIRE(closes.size() == expected);
    CHECK(closes.back().code == k.first);
    CHECK(closes.back().reason == k.second);
  }
  // A close that may not be sent is refused locally.
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  CHECK(c.close(1005, "no").code == ws::Errc::invalid_close);
  CHECK(c.close(999).code == ws::Errc::invalid_close);
  CHECK(c.is_open());
}

TEST_CASE("net: on_open and on_close run exactly once per session") {
  std::mutex mu;
  std::map<std::uint64_t, int> opens, closes;
  std::map<std::uint64_t, std::uint16_t> codes;
  std::shared_ptr<ws::Session> to_close;
  TestServer ts;
  ts.server.on_open([&](ws::Session& s) {
    std::lock_guard<std::mutex> g(mu);
    ++opens[s.id()];
    if (s.path() == "/server-closes") to_close = s.shared();
  });
  ts.server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });
  ts.server.on_close([&](ws::Session& s, std::uint16_t code, std::string_view) {
    std::lock_guard<std::mutex> g(mu);
    ++closes[s.id()];
    codes[s.id()] = code;
  });
  LIVE_REQUIRE(ts.start());

  // 1. a normal close from the client
  {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url()));
    CHECK(!c.close(1000));
  }
  // 2. the server closes (from the test thread, through a kept Session)
  {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url("/server-closes")));
    std::shared_ptr<ws::Session> s;
    CHECK(eventually([&] {
      std::lock_guard<std::mutex> g(mu);
      s = to_close;
      return s != nullptr;
    }));
    LIVE_REQUIRE(s != nullptr);
    CHECK(!s->close(4002, "bye"));
    CHECK(s->close(4003).code == ws::Errc::not_open);  // only one close
    CHECK(receive_until_closed(c));
    CHECK(c.close_code() == 4002);
    std::lock_guard<std::mutex> g(mu);
    to_close.reset();
  }
  // 3. the TCP connection drops without a close frame
  {
    Raw r;
    LIVE_REQUIRE(r.connect(ts.port()));
    LIVE_REQUIRE(r.handshake());
    r.s.close();
  }
  // 4. a protocol error: an unmasked frame from the client
  {
    Raw r;
    LIVE_REQUIRE(r.connect(ts.port()));
    LIVE_REQUIRE(r.handshake());
    CHECK(r.send(std::string("\x81\x02hi", 4)));
    Frame f;
    CHECK(r.read_frame(f) == Raw::data);
    CHECK(f.opcode == 8u);
    CHECK(f.close_code() == 1002u);
    CHECK(r.read_to_close(5000));
  }
  // 5. still open when the server stops
  ws::Client last;
  LIVE_REQUIRE(connect(last, ts.url()));
  // 6. a connection that never completes the handshake: no on_open, so no on_close
  Raw never;
  LIVE_REQUIRE(never.connect(ts.port()));
  CHECK(never.send("GET / HTTP/1.1\r\n"));

  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return opens.size() == 5 && closes.size() == 4;
  }));
  std::thread drain([&] { receive_until_closed(last, 5000); });  // answers the 1001
  ts.stop();
  drain.join();
  CHECK(last.close_code() == ws::close_code::going_away);

  std::lock_guard<std::mutex> g(mu);
  CHECK(opens.size() == 5);
  CHECK(closes.size() == 5);
  for (const auto& o : opens) {
    INFO("session " << o.first);
    CHECK(o.second == 1);
    CHECK(closes[o.first] == 1);
  }
  for (const auto& c : closes) CHECK(opens.count(c.first) == 1);
  std::vector<std::uint16_t> seen;
  for (const auto& c : codes) seen.push_back(c.second);
  // In session order: 1000, 4002 (echoed), 1006 (dropped), 1002 (failed), 1001 (stop).
  const std::vector<std::uint16_t> want = {1000, 4002, 1006, 1002, 1001};
  CHECK(seen == want);
}

TEST_CASE("net: subprotocol negotiation") {
  std::mutex mu;
  std::vector<std::string> server_side;
  ws::ServerOptions o = server_options();
  o.subprotocols = {"chat", "superchat"};
  TestServer ts(o);
  ts.server.on_open([&](ws::Session& s) {
    std::lock_guard<std::mutex> g(mu);
    server_side.push_back(s.subprotocol());
  });
  LIVE_REQUIRE(ts.start());

  auto negotiate = [&](std::vector<std::string> offer) {
    ws::ClientOptions co = client_options();
    co.subprotocols = std::move(offer);
    ws::Client c;
    if (!connect(c, ts.url(), co)) return std::string("<connect failed>");
    std::string chosen = c.subprotocol();
    c.close();
    return chosen;
  };
  CHECK(negotiate({"superchat", "chat"}) == "superchat");  // the client's order wins
  CHECK(negotiate({"chat", "superchat"}) == "chat");
  CHECK(negotiate({"mqtt", "chat"}) == "chat");
  CHECK(negotiate({"mqtt", "v2.json"}).empty());  // none in common: no subprotocol
  CHECK(negotiate({}).empty());
  std::lock_guard<std::mutex> g(mu);
  const std::vector<std::string> want = {"superchat", "chat", "chat", "", ""};
  CHECK(server_side == want);
}

TEST_CASE("net: extra client header reaches the on_handshake hook") {
  std::mutex mu;
  std::string auth, custom, target;
  TestServer ts;
  echo_handler(ts.server);
  ts.server.on_handshake([&](const ws::HttpRequest& req, ws::HttpResponse& answer) {
    std::lock_guard<std::mutex> g(mu);
    auth = std::string(req.get("Authorization"));
    custom = std::string(req.get("x-custom"));
    target = req.target;
    answer.add("X-Server", "test");
  });
  LIVE_REQUIRE(ts.start());
  ws::ClientOptions co = client_options();
  co.headers.push_back({"Authorization", "Bearer abc.def"});
  co.headers.push_back({"X-Custom", "1"});
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url("/room?id=7"), co));
  {
    std::lock_guard<std::mutex> g(mu);
    CHECK(auth == "Bearer abc.def");
    CHECK(custom == "1");
    CHECK(target == "/room?id=7");
  }
  CHECK(echo_works(ts.url()));
  // A header value with CR/LF is refused before anything is sent.
  co.headers.push_back({"X-Evil", "a\r\nInjected: yes"});
  ws::Client bad;
  CHECK(bad.connect(ts.url(), co).code == ws::Errc::bad_argument);
}

// The opening request is for on_open: the server frees it when on_open returns (an open
// connection keeps little memory), so later callbacks see an empty request.
TEST_CASE("net: the opening request is there in on_open and gone after it") {
  std::mutex mu;
  std::string open_path, open_query, open_header, later_target;
  std::size_t later_fields = 99;
  std::atomic<int> messages{0};
  TestServer ts;
  ts.server.on_open([&](ws::Session& s) {
    std::lock_guard<std::mutex> g(mu);
    open_path = std::string(s.path());
    open_query = std::string(s.query());
    open_header = std::string(s.request().get("X-Token"));
  });
  ts.server.on_message([&](ws::Session& s, const ws::Message& m) {
    {
      std::lock_guard<std::mutex> g(mu);
      later_target = s.request().target + std::string(s.path());
      later_fields = s.request().fields.size();
    }
    s.send(m);
    ++messages;
  });
  LIVE_REQUIRE(ts.start());
  ws::ClientOptions co = client_options();
  co.headers.push_back({"X-Token", "t0k3n"});
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url("/room/1?user=ann"), co));
  CHECK(!c.send_text("hi"));
  ws::Message m;
  CHECK(!receive_data(c, m));
  CHECK(m.data == "hi");
  CHECK(eventually([&] { return messages == 1; }));
  {
    std::lock_guard<std::mutex> g(mu);
    CHECK(open_path == "/room/1");
    CHECK(open_query == "user=ann");
    CHECK(open_header == "t0k3n");
    CHECK(later_target == "");
    CHECK(later_fields == 0);
    later_fields = 99;
    later_target = "x";
  }
  // The same when the first message comes in the same read as the request.
  Raw raw;
  LIVE_REQUIRE(raw.connect(ts.port()));
  LIVE_REQUIRE(raw.send(live::request("/p?q") + live::frame(0x1, "piped")));
  CHECK(eventually([&] { return messages == 2; }));
  std::lock_guard<std::mutex> g(mu);
  CHECK(open_path == "/p");
  CHECK(later_target == "");
  CHECK(later_fields == 0);
}

// The poll driver's sessions share a few locks (by id). A hook runs under the lock of the
// connection it serves, and may send to other sessions, some of which share that lock: with
// more sessions than locks, this must neither deadlock nor lose a message.
TEST_CASE("net: a handshake hook that broadcasts to more sessions than there are locks") {
  constexpr int kClients = 70;  // > the poll driver's 64 shared locks
  std::atomic<int> opened{0};
  std::atomic<std::size_t> reached{0};
  TestServer ts;
  ts.server.on_open([&](ws::Session&) { ++opened; });
  ts.server.on_handshake([&](const ws::HttpRequest& req, ws::HttpResponse&) {
    if (req.path() == "/join") reached = ts.server.broadcast_text("someone joins");
  });
  LIVE_REQUIRE(ts.start());
  std::vector<std::unique_ptr<ws::Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<ws::Client>());
    LIVE_REQUIRE(connect(*clients.back(), ts.url()));
  }
  CHECK(eventually([&] { return opened == kClients; }));
  ws::Client joiner;
  LIVE_REQUIRE(connect(joiner, ts.url("/join")));
  CHECK(reached == static_cast<std::size_t>(kClients));
  int got = 0;
  for (auto& c : clients) {
    ws::Message m;
    if (!receive_data(*c, m) && m.data == "someone joins") ++got;
  }
  CHECK(got == kClients);
}

// Hooks run outside every session lock: one that waits for a lock of the user's must not
// hold up sends to open sessions meanwhile (the poll driver's sessions share their locks, so
// a hook run under one would block sends to the sessions that share it: a deadlock, when the
// thread that holds the user's lock is the one sending).
TEST_CASE("net: a handshake hook that waits does not hold up sends to open sessions") {
  constexpr int kOpen = 70;  // more than the poll driver's shared locks: every lock in use
  std::atomic<bool> user_lock{false};  // a lock of the user's, held by the sending thread
  std::atomic<bool> in_hook{false}, hook_got_lock{false};
  std::mutex mu;
  std::vector<std::shared_ptr<ws::Session>> open;
  TestServer ts;
  ts.server.on_open([&](ws::Session& s) {
    std::lock_guard<std::mutex> g(mu);
    open.push_back(s.shared());
  });
  ts.server.on_handshake([&](const ws::HttpRequest& req, ws::HttpResponse&) {
    if (req.path() != "/slow") return;
    in_hook = true;
    hook_got_lock = eventually([&] { return !user_lock.load(); }, 5000);
  });
  LIVE_REQUIRE(ts.start());
  std::vector<std::unique_ptr<ws::Client>> clients;
  for (int i = 0; i < kOpen; ++i) {
    clients.push_back(std::make_unique<ws::Client>());
    LIVE_REQUIRE(connect(*clients.back(), ts.url()));
  }
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return open.size() == static_cast<std::size_t>(kOpen);
  }));
  user_lock = true;
  ws::Client slow;
  ws::Error slow_result;
  std::thread t([&] { slow_result = slow.connect(ts.url("/slow"), client_options()); });
  CHECK(eventually([&] { return in_hook.load(); }));
  const std::int64_t t0 = now_ms();
  int sent = 0;
  {
    std::lock_guard<std::mutex> g(mu);
    for (auto& s : open) sent += s->send_text("while the hook waits") ? 0 : 1;
  }
  const std::int64_t took = now_ms() - t0;
  user_lock = false;
  t.join();
  CHECK(sent == kOpen);
  CHECK(took < 2000);  // a send that waited for the hook would take the hook's 5 s
  CHECK(hook_got_lock);
  CHECK(!slow_result);
  for (auto& c : clients) {
    ws::Message m;
    CHECK(!receive_data(*c, m));
    CHECK(m.data == "while the hook waits");
  }
}

// A Session kept past its Server answers, as a closed session: nothing of the Server it came
// from is touched.
TEST_CASE("net: a session kept after its server is gone reports closed") {
  std::shared_ptr<ws::Session> kept;
  std::atomic<bool> opened{false};
  {
    ws::ServerOptions o = server_options();
    o.close_timeout_ms = 300;
    auto ts = std::make_unique<TestServer>(o);
    ts->server.on_open([&](ws::Session& s) {
      kept = s.shared();
      opened = true;
    });
    LIVE_REQUIRE(ts->start());
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts->url()));
    CHECK(eventually([&] { return opened.load(); }));
    ts.reset();  // stops the server and destroys it
  }
  LIVE_REQUIRE(kept != nullptr);
  CHECK(!kept->is_open());
  CHECK(kept->buffered_amount() == 0);
  CHECK(kept->send_text("late").code == ws::Errc::closed);
  CHECK(kept->close().code == ws::Errc::closed);
}

TEST_CASE("net: on_handshake rejecting with 401 fails the connect; the server stays healthy") {
  std::atomic<int> opened{0};
  TestServer ts;
  echo_handler(ts.server);
  ts.server.on_open([&](ws::Session&) { ++opened; });
  ts.server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });
  ts.server.on_handshake([](const ws::HttpRequest& req, ws::HttpResponse& answer) {
    if (req.get("Authorization") == "let me in") return;
    answer = ws::HttpResponse();
    answer.status = 401;
    answer.add("WWW-Authenticate", "Bearer");
    answer.body = "who are you?\n";
  });
  LIVE_REQUIRE(ts.start());

  for (int i = 0; i < 3; ++i) {
    ws::Client c;
    const std::int64_t t0 = now_ms();
    ws::Error e = c.connect(ts.url(), client_options());
    CHECK(e.code == ws::Errc::handshake_failed);
    CHECK(now_ms() - t0 < 3000);
    CHECK(!c.is_open());
  }
  // What the hook answered goes out as written.
  std::string answer = exchange(ts.port(), upgrade_request());
  CHECK(status_line(answer) == "HTTP/1.1 401 Unauthorized");
  CHECK(answer.find("WWW-Authenticate: Bearer\r\n") != std::string::npos);
  CHECK(answer.find("\r\n\r\nwho are you?\n") != std::string::npos);

  ws::ClientOptions co = client_options();
  co.headers.push_back({"Authorization", "let me in"});
  ws::Client ok;
  LIVE_REQUIRE(connect(ok, ts.url(), co));
  CHECK(!ok.send_text("hi"));
  ws::Message m;
  CHECK(!receive_data(ok, m));
  CHECK(m.data == "hi");
  CHECK(opened == 1);
  CHECK(eventually([&] { return ts.server.connection_count() == 1; }));
}

TEST_CASE("net: routes: a path without a route is refused with 404") {
  std::atomic<int> a_opened{0};
  TestServer ts;
  ws::Handlers a;
  a.on_open = [&](ws::Session&) { ++a_opened; };
  a.on_message = [](ws::Session& s, const ws::Message& m) { s.send_text("a:" + m.data); };
  ts.server.route("/a", a);
  LIVE_REQUIRE(ts.start());

  ws::Client ca;
  LIVE_REQUIRE(connect(ca, ts.url("/a?x=1")));  // the query is not part of the route
  CHECK(!ca.send_text("1"));
  ws::Message m;
  CHECK(!receive_data(ca, m));
  CHECK(m.data == "a:1");

  ws::Client cb;
  CHECK(cb.connect(ts.url("/b"), client_options()).code == ws::Errc::handshake_failed);
  CHECK(cb.connect(ts.url("/"), client_options()).code == ws::Errc::handshake_failed);
  CHECK(status_line(exchange(ts.port(), upgrade_request("/b"))) == "HTTP/1.1 404 Not Found");
  CHECK(a_opened == 1);
}

TEST_CASE("net: plain HTTP GET gets 426 on a WebSocket path and 404 elsewhere") {
  TestServer ts;
  ws::Handlers a;
  a.on_message = [](ws::Session& s, const ws::Message& m) { s.send(m); };
  ts.server.route("/a", a);
  LIVE_REQUIRE(ts.start());

  bool closed = false;
  std::string r = exchange(ts.port(), "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n", &closed);
  CHECK(status_line(r) == "HTTP/1.1 426 Upgrade Required");
  CHECK(r.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
  CHECK(closed);
  r = exchange(ts.port(), "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n", &closed);
  CHECK(status_line(r) == "HTTP/1.1 404 Not Found");
  CHECK(closed);
  CHECK(echo_works(ts.url("/a")));
}

TEST_CASE("net: on_http serves a page") {
  const std::string page = "<!doctype html><title>t</title><p>hello from on_http</p>\n";
  TestServer ts;
  echo_handler(ts.server);
  ts.server.on_http([&](const ws::HttpRequest& req, ws::HttpResponse& answer) {
    if (req.path() != "/") return;  // the prefilled 426 stays
    answer = ws::HttpResponse();
    answer.status = 200;
    answer.add("Content-Type", "text/html; charset=utf-8");
    answer.body = page;
  });
  LIVE_REQUIRE(ts.start());

  bool closed = false;
  std::string r = exchange(ts.port(), "GET /?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n", &closed);
  CHECK(closed);
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  std::size_t body = r.find("\r\n\r\n");
  LIVE_REQUIRE(body != std::string::npos);
  CHECK(r.substr(body + 4) == page);
  CHECK(r.find("Content-Length: " + std::to_string(page.size()) + "\r\n") != std::string::npos);
  CHECK(r.find("Content-Type: text/html; charset=utf-8\r\n") != std::string::npos);
  // Another path: the default handlers make it a WebSocket path, so 426.
  CHECK(status_line(exchange(ts.port(), "GET /other HTTP/1.1\r\nHost: x\r\n\r\n")) ==
        "HTTP/1.1 426 Upgrade Required");
  // And the WebSocket on "/" still works.
  CHECK(echo_works(ts.url("/")));
}

TEST_CASE("net: a malformed handshake gets 400 and the connection is closed") {
  std::atomic<int> opened{0};
  TestServer ts;
  echo_handler(ts.server);
  ts.server.on_open([&](ws::Session&) { ++opened; });
  LIVE_REQUIRE(ts.start());

  const std::string bad_requests[] = {
      "HELLO\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
      // A valid-looking upgrade with a key that is not 16 bytes of base64.
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
  };
  for (const std::string& req : bad_requests) {
    INFO("request: " << req);
    bool closed = false;
    std::string r = exchange(ts.port(), req, &closed);
    CHECK(status_line(r) == "HTTP/1.1 400 Bad Request");
    CHECK(closed);
  }
  // A request line over the limit is answered too (414), not just dropped.
  std::string r = exchange(ts.port(), "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 414 URI Too Long");
  CHECK(opened == 0);
  CHECK(eventually([&] { return ts.server.connection_count() == 0; }));
  CHECK(echo_works(ts.url()));
}

TEST_CASE("net: handshake timeout closes a silent connection") {
  ws::ServerOptions o = server_options();
  o.handshake_timeout_ms = 300;
  TestServer ts(o);
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start());
  // Let the server sit idle first: the timeout counts from the accept, not from whenever the
  // server last woke up.
  sleep_ms(700);

  Raw silent, slow;
  const std::int64_t t0 = now_ms();
  LIVE_REQUIRE(silent.connect(ts.port()));
  LIVE_REQUIRE(slow.connect(ts.port()));
  CHECK(slow.send("GET / HTTP/1.1\r\nHost: x\r\n"));  // never finishes its head
  CHECK(silent.read_to_close(5000));
  const std::int64_t took = now_ms() - t0;
  CHECK(silent.in.empty());
  CHECK(took >= 250);
  CHECK(took < 2500);
  CHECK(slow.read_to_close(3000));
  CHECK(eventually([&] { return ts.server.connection_count() == 0; }));

  // A client that completes the handshake in time is not affected, even after the timeout.
  sleep_ms(600);
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  sleep_ms(500);
  CHECK(!c.send_text("after the handshake timeout"));
  ws::Message m;
  CHECK(!receive_data(c, m));
  CHECK(m.data == "after the handshake timeout");
}

TEST_CASE("net: idle ping, and a peer that never answers is dropped after about 2x") {
  const int idle = 300;
  ws::ServerOptions o = server_options();
  o.idle_ping_ms = idle;
  std::mutex mu;
  std::vector<std::uint16_t> codes;
  TestServer ts(o);
  echo_handler(ts.server);
  ts.server.on_close([&](ws::Session&, std::uint16_t code, std::string_view) {
    std::lock_guard<std::mutex> g(mu);
    codes.push_back(code);
  });
  LIVE_REQUIRE(ts.start());
  sleep_ms(700);  // an idle server first: timers count from the accept

  SUBCASE("a silent raw peer gets a ping, then is dropped") {
    Raw r;
    LIVE_REQUIRE(r.connect(ts.port()));
    LIVE_REQUIRE(r.handshake());
    const std::int64_t t0 = now_ms();
    Frame f;
    LIVE_REQUIRE(r.read_frame(f, 5000) == Raw::data);
    const std::int64_t ping_at = now_ms() - t0;
    CHECK(f.opcode == 9u);
    CHECK(!f.masked);
    CHECK(ping_at >= idle - 60);
    CHECK(ping_at < idle + 1500);
    CHECK(r.read_to_close(5000));  // no pong: dropped
    const std::int64_t dropped_at = now_ms() - t0;
    CHECK(dropped_at >= 2 * idle - 60);
    CHECK(dropped_at < 2 * idle + 1500);
    CHECK(r.in.empty());  // dropped without a close frame
    CHECK(eventually([&] {
      std::lock_guard<std::mutex> g(mu);
      return codes.size() == 1;
    }));
    std::lock_guard<std::mutex> g(mu);
    if (!codes.empty()) CHECK(codes[0] == ws::close_code::abnormal);
  }
  SUBCASE("a raw peer that answers the ping stays") {
    Raw r;
    LIVE_REQUIRE(r.connect(ts.port()));
    LIVE_REQUIRE(r.handshake());
    const std::int64_t t0 = now_ms();
    int pings = 0;
    while (now_ms() - t0 < 4 * idle) {
      Frame f;
      Raw::Read got = r.read_frame(f, 100);
      if (got == Raw::timeout) continue;
      LIVE_REQUIRE(got == Raw::data);
      CHECK(f.opcode == 9u);
      ++pings;
      CHECK(r.send(client_frame(10, f.payload)));
    }
    CHECK(pings >= 2);
    CHECK(r.send(client_frame(1, "alive")));
    Frame f;
    while (r.read_frame(f, 3000) == Raw::data && f.opcode == 9u) {
    }
    CHECK(f.opcode == 1u);
    CHECK(f.payload == "alive");
  }
  SUBCASE("a ws::Client that keeps receiving answers pings by itself") {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url()));
    ws::Message m;
    const std::int64_t t0 = now_ms();
    while (now_ms() - t0 < 4 * idle) CHECK(c.receive(m, 50).code == ws::Errc::timeout);
    CHECK(c.is_open());
    CHECK(!c.send_text("still here"));
    CHECK(!receive_data(c, m));
    CHECK(m.data == "still here");
    std::lock_guard<std::mutex> g(mu);
    CHECK(codes.empty());
  }
}

TEST_CASE("net: close timeout: a peer that never answers the close is dropped") {
  const int close_timeout = 300;
  ws::ServerOptions o = server_options();
  o.close_timeout_ms = close_timeout;
  std::mutex mu;
  std::vector<std::uint16_t> codes;
  TestServer ts(o);
  ts.server.on_open([](ws::Session& s) { s.close(4001, "closing"); });
  ts.server.on_close([&](ws::Session&, std::uint16_t code, std::string_view) {
    std::lock_guard<std::mutex> g(mu);
    codes.push_back(code);
  });
  LIVE_REQUIRE(ts.start());
  sleep_ms(700);

  Raw r;
  LIVE_REQUIRE(r.connect(ts.port()));
  LIVE_REQUIRE(r.handshake());
  Frame f;
  LIVE_REQUIRE(r.read_frame(f) == Raw::data);
  const std::int64_t t0 = now_ms();
  CHECK(f.opcode == 8u);
  CHECK(f.close_code() == 4001u);
  CHECK(f.close_reason() == "closing");
  CHECK(r.read_to_close(5000));  // we never answer
  const std::int64_t took = now_ms() - t0;
  CHECK(took >= close_timeout - 80);
  CHECK(took < close_timeout + 1500);
  CHECK(r.in.empty());
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return codes.size() == 1;
  }));
  std::lock_guard<std::mutex> g(mu);
  if (!codes.empty()) CHECK(codes[0] == ws::close_code::abnormal);
}

TEST_CASE("net: many connections at once") {
  constexpr int kThreads = 4, kPerThread = 50, kMessages = 3;
  constexpr int kTotal = kThreads * kPerThread;
  std::atomic<int> opened{0}, closed{0};
  TestServer ts;
  echo_handler(ts.server);
  ts.server.on_open([&](ws::Session&) { ++opened; });
  ts.server.on_close([&](ws::Session&, std::uint16_t, std::string_view) { ++closed; });
  LIVE_REQUIRE(ts.start());

  std::atomic<int> connected{0}, tried{0}, echoed{0}, failures{0};
  std::atomic<bool> all_counted{false};
  const std::string url = ts.url();
  auto worker = [&](int t) {
    std::vector<std::unique_ptr<ws::Client>> clients;
    for (int i = 0; i < kPerThread; ++i) {
      clients.emplace_back(new ws::Client);
      if (clients.back()->connect(url, client_options())) {
        ++failures;
        clients.pop_back();
      } else {
        ++connected;
      }
    }
    ++tried;
    // Every connection is open at the same time: wait for the others (bounded).
    eventually([&] { return all_counted.load(); }, 15000);
    for (int k = 0; k < kMessages; ++k) {
      for (std::size_t i = 0; i < clients.size(); ++i)
        if (clients[i]->send_text("t" + std::to_string(t) + " c" + std::to_string(i) + " m" + std::to_string(k)))
          ++failures;
      for (std::size_t i = 0; i < clients.size(); ++i) {
        ws::Message m;
        if (receive_data(*clients[i], m) ||
            m.data != "t" + std::to_string(t) + " c" + std::to_string(i) + " m" + std::to_string(k))
          ++failures;
        else
          ++echoed;
      }
    }
    for (auto& c : clients)
      if (c->close()) ++failures;
  };
  const std::int64_t t0 = now_ms();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  CHECK(eventually([&] { return tried == kThreads; }, 20000));
  CHECK(connected == kTotal);
  CHECK(eventually([&] { return ts.server.connection_count() == static_cast<std::size_t>(kTotal); }));
  CHECK(opened == kTotal);
  all_counted = true;
  for (auto& th : threads) th.join();
  MESSAGE(kTotal << " connections, " << kTotal * kMessages << " echoes: " << now_ms() - t0 << " ms");
  CHECK(failures == 0);
  CHECK(echoed == kTotal * kMessages);
  CHECK(eventually([&] { return ts.server.connection_count() == 0; }));
  CHECK(eventually([&] { return closed == kTotal; }));
}

TEST_CASE("net: cross-thread send through Session::shared()") {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<ws::Session> session;
  std::deque<std::string> requests;  // for the worker thread
  TestServer ts;
  ts.server.on_open([&](ws::Session& s) {
    std::lock_guard<std::mutex> g(mu);
    session = s.shared();
  });
  ts.server.on_message([&](ws::Session&, const ws::Message& m) {
    std::lock_guard<std::mutex> g(mu);
    requests.push_back(m.data);
    cv.notify_all();
  });
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  std::shared_ptr<ws::Session> s;
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    s = session;
    return s != nullptr;
  }));
  LIVE_REQUIRE(s != nullptr);
  CHECK(s->is_open());

  // A burst from another thread arrives complete and in order.
  constexpr int kBurst = 2000;
  std::atomic<int> send_errors{0};
  std::thread sender([&] {
    for (int i = 0; i < kBurst; ++i)
      if (s->send_text("burst " + std::to_string(i))) ++send_errors;
  });
  int in_order = 0;
  for (int i = 0; i < kBurst; ++i) {
    ws::Message m;
    if (receive_data(c, m)) break;
    if (m.data == "burst " + std::to_string(i)) ++in_order;
  }
  sender.join();
  CHECK(send_errors == 0);
  CHECK(in_order == kBurst);

  // Request/response where another thread sends each answer: every wake-up of the server's
  // loop must work, so no answer waits for a timer.
  std::atomic<bool> quit{false};
  std::thread worker([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!quit) {
      if (requests.empty()) {
        cv.wait_for(lock, std::chrono::milliseconds(50));
        continue;
      }
      std::string r = std::move(requests.front());
      requests.pop_front();
      lock.unlock();
      s->send_text("re: " + r);
      lock.lock();
    }
  });
  std::int64_t worst = 0;
  const std::int64_t t0 = now_ms();
  constexpr int kRounds = 200;
  int answered = 0;
  for (int i = 0; i < kRounds; ++i) {
    const std::int64_t t = now_ms();
    if (c.send_text("q" + std::to_string(i))) break;
    ws::Message m;
    if (receive_data(c, m, 3000) || m.data != "re: q" + std::to_string(i)) break;
    ++answered;
    if (now_ms() - t > worst) worst = now_ms() - t;
  }
  const std::int64_t total = now_ms() - t0;
  quit = true;
  cv.notify_all();
  worker.join();
  MESSAGE(kRounds << " cross-thread round trips: " << total << " ms, worst " << worst << " ms");
  CHECK(answered == kRounds);
  CHECK(worst < 700);
  CHECK(total < 5000);

  // After the client closed, the kept session says so.
  CHECK(!c.close());
  CHECK(eventually([&] { return !s->is_open(); }));
  CHECK(s->send_text("gone").code != ws::Errc::ok);
  std::lock_guard<std::mutex> g(mu);
  session.reset();
}

TEST_CASE("net: broadcast reaches every open session") {
  std::atomic<int> opened{0};
  TestServer ts;
  ts.server.on_open([&](ws::Session&) { ++opened; });
  ts.server.on_message([&](ws::Session&, const ws::Message& m) {
    if (m.data == "shout") ts.server.broadcast_text("from a callback");  // on a driver thread
  });
  LIVE_REQUIRE(ts.start());
  ws::Client c[3];
  for (auto& x : c) LIVE_REQUIRE(connect(x, ts.url()));
  CHECK(eventually([&] { return opened == 3; }));
  // A connection still in its handshake is not counted.
  Raw pending;
  LIVE_REQUIRE(pending.connect(ts.port()));
  CHECK(eventually([&] { return ts.server.connection_count() == 4; }));

  CHECK(ts.server.broadcast_text("to everyone") == 3);
  ws::Message bin;
  bin.type = ws::EventType::binary;
  bin.data = std::string("\x00\xFF", 2);
  CHECK(ts.server.broadcast(bin) == 3);
  for (auto& x : c) {
    ws::Message m;
    CHECK(!receive_data(x, m));
    CHECK(m.data == "to everyone");
    CHECK(!receive_data(x, m));
    CHECK(m.type == ws::EventType::binary);
    CHECK(m.data == bin.data);
  }
  CHECK(!c[1].send_text("shout"));
  for (auto& x : c) {
    ws::Message m;
    CHECK(!receive_data(x, m));
    CHECK(m.data == "from a callback");
  }
  CHECK(!c[0].close());
  CHECK(eventually([&] { return ts.server.connection_count() == 3; }));
  CHECK(ts.server.broadcast_text("to the rest") == 2);
  for (int i = 1; i < 3; ++i) {
    ws::Message m;
    CHECK(!receive_data(c[i], m));
    CHECK(m.data == "to the rest");
  }
}

// Session::send(m) of the message on_message holds skips the UTF-8 check (it was validated on
// arrival); anything else is checked: a copy, a changed copy, a message the user built.
TEST_CASE("net: echoing the received message skips revalidation, other text is still checked") {
  std::atomic<int> echoed{0}, copy_errc{-1}, built_errc{-1}, broadcast_bad{-1};
  TestServer ts;
  ts.server.on_message([&](ws::Session& s, const ws::Message& m) {
    ws::Message copy = m;
    copy.data += "\xC3";  // now ends inside a code point
    copy_errc = static_cast<int>(s.send(copy).code);
    ws::Message built;
    built.data = "\xED\xA0\x80";  // a surrogate
    built_errc = static_cast<int>(s.send(built).code);
    broadcast_bad = static_cast<int>(ts.server.broadcast(built));
    if (!s.send(m)) ++echoed;
  });
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC " + std::string(70000, 'x');  // assembled from reads
  CHECK(!c.send_text(text));
  ws::Message m;
  CHECK(!receive_data(c, m));
  CHECK(m.data == text);
  CHECK(eventually([&] { return echoed == 1; }));  // the blocking driver sends before counting
  CHECK(copy_errc == static_cast<int>(ws::Errc::invalid_utf8));
  CHECK(built_errc == static_cast<int>(ws::Errc::invalid_utf8));
  CHECK(broadcast_bad == 0);
  // Nothing else was sent: the next message is the next echo.
  CHECK(!c.send_text("again"));
  CHECK(!receive_data(c, m));
  CHECK(m.data == "again");
}

TEST_CASE("net: per-session user_data") {
  struct State {
    int count = 0;
    std::string name;
  };
  std::atomic<int> destroyed_checks{0};
  TestServer ts;
  ts.server.on_open([](ws::Session& s) {
    s.user_data = std::make_shared<State>();
    s.user<State>()->name = std::string(s.query());
  });
  ts.server.on_message([](ws::Session& s, const ws::Message& m) {
    State* st = s.user<State>();
    if (!st) return;
    ++st->count;
    s.send_text(st->name + ":" + std::to_string(st->count) + ":" + m.data);
  });
  ts.server.on_close([&](ws::Session& s, std::uint16_t, std::string_view) {
    if (s.user<State>() && s.user<State>()->count > 0) ++destroyed_checks;
  });
  LIVE_REQUIRE(ts.start());
  ws::Client a, b;
  LIVE_REQUIRE(connect(a, ts.url("/?alice")));
  LIVE_REQUIRE(connect(b, ts.url("/?bob")));
  ws::Message m;
  CHECK(!a.send_text("x"));
  CHECK(!receive_data(a, m));
  CHECK(m.data == "alice:1:x");
  CHECK(!b.send_text("y"));
  CHECK(!receive_data(b, m));
  CHECK(m.data == "bob:1:y");
  CHECK(!a.send_text("z"));
  CHECK(!receive_data(a, m));
  CHECK(m.data == "alice:2:z");
  CHECK(!b.close());
  CHECK(!a.close());
  CHECK(eventually([&] { return destroyed_checks == 2; }));  // still there in on_close
}

TEST_CASE("net: stop under load") {
  constexpr int kClients = 4;
  const int close_timeout = 500;
  ws::ServerOptions o = server_options();
  o.close_timeout_ms = close_timeout;
  std::atomic<long> received{0};
  TestServer ts(o);
  ts.server.on_message([&](ws::Session&, const ws::Message&) { ++received; });
  LIVE_REQUIRE(ts.start());

  struct Outcome {
    bool connected = false;
    bool finished = false;
    ws::Errc send_error = ws::Errc::ok;
    std::uint16_t close_code = 0;
    std::atomic<long> sent{0};
  };
  Outcome out[kClients];
  std::vector<std::thread> threads;
  const std::string url = ts.url();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      ws::ClientOptions co = client_options();
      co.send_timeout_ms = 3000;
      ws::Client c;
      if (c.connect(url, co)) return;
      out[i].connected = true;
      const std::string msg = text_pattern(1000);
      const std::int64_t deadline = now_ms() + 10000;
      ws::Error e;
      while (!(e = c.send_text(msg)) && now_ms() < deadline) ++out[i].sent;
      out[i].send_error = e.code;
      receive_until_closed(c, 3000);
      out[i].close_code = c.close_code();
      out[i].finished = true;
    });
  }
  CHECK(eventually([&] { return ts.server.connection_count() == kClients; }));
  // Stop once every client is busy sending.
  CHECK(eventually([&] {
    for (const Outcome& x : out)
      if (x.sent < 50) return false;
    return true;
  }, 10000));
  const std::int64_t t0 = now_ms();
  ts.stop();
  const std::int64_t took = now_ms() - t0;
  for (auto& th : threads) th.join();
  MESSAGE("stop() under load took " << took << " ms; " << received.load() << " messages received");
  CHECK(took < close_timeout + 1500);
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i);
    CHECK(out[i].connected);
    CHECK(out[i].finished);
    CHECK(out[i].sent.load() > 0);
    CHECK((out[i].send_error == ws::Errc::closed || out[i].send_error == ws::Errc::not_open));
    CHECK((out[i].close_code == ws::close_code::going_away || out[i].close_code == ws::close_code::abnormal));
  }
  CHECK(ts.server.connection_count() == 0);
}

TEST_CASE("net: IPv6 loopback") {
  // No skipping: a machine without ::1 fails here.
  TestServer ts;
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start("::1"));
  CHECK(ts.port() != 0);
  CHECK(ts.url() == "ws://[::1]:" + std::to_string(ts.port()) + "/");
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url("/six")));
  CHECK(!c.send_text("over IPv6"));
  ws::Message m;
  CHECK(!receive_data(c, m));
  CHECK(m.data == "over IPv6");
  CHECK(!c.close());
  CHECK(c.close_code() == 1000);

  // "::" listens on IPv6 and IPv4 both.
  TestServer dual;
  echo_handler(dual.server);
  LIVE_REQUIRE(dual.start("::"));
  for (const char* host : {"127.0.0.1", "[::1]"}) {
    INFO("host " << host);
    ws::Client d;
    LIVE_REQUIRE(connect(d, std::string("ws://") + host + ":" + std::to_string(dual.port()) + "/"));
    CHECK(!d.send_text("dual"));
    CHECK(!receive_data(d, m));
    CHECK(m.data == "dual");
  }
}

TEST_CASE("net: max_connections refuses the extra connection with 503") {
  ws::ServerOptions o = server_options();
  o.max_connections = 2;
  TestServer ts(o);
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start());
  ws::Client a, b;
  LIVE_REQUIRE(connect(a, ts.url()));
  LIVE_REQUIRE(connect(b, ts.url()));
  CHECK(ts.server.connection_count() == 2);
  for (int i = 0; i < 3; ++i) {
    ws::Client c;
    ws::Error e = c.connect(ts.url(), client_options());
    CHECK(e);
    CHECK((e.code == ws::Errc::handshake_failed || e.code == ws::Errc::closed));
  }
  // The refusal is a 503 (a raw client that sends nothing reads it before the close).
  Raw r;
  LIVE_REQUIRE(r.connect(ts.port()));
  CHECK(r.read_to_close(5000));
  CHECK(status_line(r.in) == "HTTP/1.1 503 Service Unavailable");
  CHECK(ts.server.connection_count() == 2);
  // The two keep working; once one leaves, a new one gets in.
  CHECK(!a.send_text("a"));
  ws::Message m;
  CHECK(!receive_data(a, m));
  CHECK(!b.close());
  CHECK(eventually([&] { return ts.server.connection_count() == 1; }));
  CHECK(echo_works(ts.url()));
}

TEST_CASE("net: send buffer limit") {
  const std::size_t limit = 256 * 1024;
  const std::size_t chunk = 16 * 1024;
  ws::ServerOptions o = server_options();
  o.limits.max_send_buffer = limit;
  o.send_timeout_ms = 300;  // blocking driver: how long a send waits for a peer that reads nothing
  struct Result {
    bool done = false;
    ws::Errc too_big = ws::Errc::ok;
    ws::Errc last = ws::Errc::ok;
    int sent = 0;
    std::size_t max_buffered = 0;
  };
  std::mutex mu;
  Result res;
  TestServer ts(o);
  ts.server.on_open([&](ws::Session& s) {
    Result r;
    // One message that can never fit is refused at once, under any driver.
    r.too_big = s.send_binary(std::string(limit, 'x')).code;
    const std::string data = pattern(chunk, 1);
    const std::int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
      ws::Error e = s.send_binary(data);
      const std::size_t b = s.buffered_amount();
      if (b > r.max_buffered) r.max_buffered = b;
      if (e) {
        r.last = e.code;
        break;
      }
      ++r.sent;
    }
    std::lock_guard<std::mutex> g(mu);
    res = r;
    res.done = true;
  });
  LIVE_REQUIRE(ts.start());
  Raw r;  // completes the handshake, then reads nothing
  LIVE_REQUIRE(r.connect(ts.port()));
  LIVE_REQUIRE(r.handshake());
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return res.done;
  }, 10000));
  std::lock_guard<std::mutex> g(mu);
  MESSAGE("sent " << res.sent << " x " << chunk << " bytes, then " << std::string(errc_name(res.last))
                  << "; max buffered " << res.max_buffered);
  CHECK(res.too_big == ws::Errc::send_buffer_full);
  CHECK(res.max_buffered <= limit);
  if (kBlocking) {
    // Blocking sockets write once 64 KiB are queued, before send returns, so the buffer never
    // fills: the peer that reads nothing is dropped after ServerOptions::send_timeout_ms instead.
    CHECK((res.last == ws::Errc::send_buffer_full || res.last == ws::Errc::closed));
  } else {
    CHECK(res.last == ws::Errc::send_buffer_full);
    CHECK(res.sent > 0);
    CHECK(static_cast<std::size_t>(res.sent) * chunk <= limit);
  }
}

// What a callback sends goes out in order, all of it. The blocking driver queues small replies
// and writes them when the callbacks return (one write per read), but writes as it goes once
// 64 KiB wait, so a callback may send more than Limits::max_send_buffer in all; the poll
// driver writes after the callback, so there the limit holds for the callback's sends.
TEST_CASE("net: a callback's sends: small ones batched in order, a big burst within the limit") {
  constexpr std::size_t kLimit = 2u << 20;
  ws::ServerOptions o = server_options();
  o.limits.max_send_buffer = kLimit;
  std::atomic<int> big_sent{-1};
  TestServer ts(o);
  ts.server.on_message([&](ws::Session& s, const ws::Message& m) {
    if (m.data == "small") {
      for (int i = 0; i < 64; ++i) s.send_text("reply " + std::to_string(i));
    } else if (m.data == "big") {
      int ok = 0;
      for (int i = 0; i < 6; ++i) ok += s.send_binary(std::string(1u << 20, static_cast<char>('a' + i))) ? 0 : 1;
      s.send_text("end");
      big_sent = ok;
    }
  });
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  CHECK(!c.send_text("small"));
  CHECK(!c.send_text("small"));
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 64; ++i) {
      ws::Message m;
      LIVE_REQUIRE(!receive_data(c, m));
      CHECK(m.data == "reply " + std::to_string(i));
    }
  }
  CHECK(!c.send_text("big"));
  int got = 0;  // the blocking driver writes as the callback sends: read meanwhile
  bool intact = true;
  ws::Message m;
  while (!receive_data(c, m, 10000) && m.data != "end") {
    intact = intact && m.data == std::string(1u << 20, static_cast<char>('a' + got));
    ++got;
  }
  CHECK(m.data == "end");
  CHECK(intact);
  CHECK(big_sent == (kBlocking ? 6 : 1));  // poll: a second 1 MiB does not fit beside the first
  CHECK(got == big_sent);
}

TEST_CASE("net: client errors: closed port, bad URL") {
  // A port nobody listens on: bind one, then close it.
  std::uint16_t port = 0;
  {
    ws::net::Socket l;
    LIVE_REQUIRE(!ws::net::listen("127.0.0.1", 0, l, port));
  }
  ws::Client c;
  const std::int64_t t0 = now_ms();
  ws::Error e = c.connect("ws://127.0.0.1:" + std::to_string(port) + "/", client_options());
  CHECK((e.code == ws::Errc::connect_failed || e.code == ws::Errc::closed));
  CHECK(now_ms() - t0 < 3000);
  CHECK(!c.is_open());
  ws::Message m;
  CHECK(c.receive(m, 100).code == ws::Errc::closed);
  CHECK(c.send_text("x").code == ws::Errc::closed);

  for (const char* url : {"", "http://127.0.0.1/", "ws://", "ws:///path", "ws://127.0.0.1:0/",
                          "ws://127.0.0.1:65536/", "ws://127.0.0.1:80x/", "ws://127.0.0.1/#frag",
                          "ws://[::1/", "ws://user@127.0.0.1/", "wss://127.0.0.1/"}) {
    INFO("url: " << url);
    CHECK(c.connect(url, client_options()).code == ws::Errc::bad_url);
  }
}

TEST_CASE("net: client connect timeout against a listener that never answers") {
  ws::net::Socket listener;  // accepts nothing, answers nothing: the kernel backlog takes the connect
  std::uint16_t port = 0;
  LIVE_REQUIRE(!ws::net::listen("127.0.0.1", 0, listener, port));
  ws::ClientOptions co = client_options();
  co.connect_timeout_ms = 300;
  ws::Client c;
  const std::int64_t t0 = now_ms();
  ws::Error e = c.connect("ws://127.0.0.1:" + std::to_string(port) + "/", co);
  const std::int64_t took = now_ms() - t0;
  CHECK(e.code == ws::Errc::timeout);
  CHECK(took >= 280);
  CHECK(took < 1500);
  CHECK(!c.is_open());
}

TEST_CASE("net: client send times out when the server reads nothing") {
  FakeServer fake;  // answers the handshake, then never reads
  LIVE_REQUIRE(fake.start());
  ws::ClientOptions co = client_options();
  co.send_timeout_ms = 300;
  co.close_timeout_ms = 300;
  ws::Client c;
  LIVE_REQUIRE(connect(c, fake.url(), co));
  const std::string chunk = pattern(1 << 20, 9);
  ws::Error e;
  int sent = 0;
  const std::int64_t t0 = now_ms();
  while (sent < 200 && !(e = c.send_binary(chunk))) ++sent;
  const std::int64_t stalled = now_ms() - t0;
  MESSAGE("sent " << sent << " MiB before " << std::string(errc_name(e.code)) << " after " << stalled << " ms");
  CHECK(sent < 200);
  CHECK((e.code == ws::Errc::timeout || e.code == ws::Errc::closed));
  CHECK(stalled < 5000);
  // Closing does not hang either: the close frame cannot be written, close_timeout_ms ends it.
  const std::int64_t t1 = now_ms();
  c.close();
  CHECK(now_ms() - t1 < 2000);
  CHECK(!c.is_open());
}

TEST_CASE("net: close() keeps writing the close frame while it waits") {
  // A peer that reads nothing at first: the client's send times out with data still queued,
  // then close() queues the close frame behind it. The peer starts reading only then, and
  // sends nothing until it sees the close frame, so close() must write while it waits.
  std::atomic<bool> start_reading{false};
  std::atomic<unsigned> peer_saw_close{0};
  FakeServer fake;
  LIVE_REQUIRE(fake.start([&](Raw& peer) {
    if (!eventually([&] { return start_reading.load(); }, 10000)) return;
    sleep_ms(300);  // close() is waiting by now, its first write refused
    Frame f;
    while (peer.read_frame(f, 5000) == Raw::data) {
      if (f.opcode != 8) continue;
      peer_saw_close = f.close_code();
      peer.send(server_frame(8, f.payload.substr(0, 2)));
      peer.s.close();
      return;
    }
  }));
  ws::ClientOptions co = client_options();
  co.send_timeout_ms = 200;
  co.close_timeout_ms = 5000;
  ws::Client c;
  LIVE_REQUIRE(connect(c, fake.url(), co));
  // Far more than the socket buffers hold, so most of it is still queued when close() runs.
  const std::string chunk = pattern(16u << 20, 11);
  ws::Error e;
  for (int i = 0; i < 10 && !e; ++i) e = c.send_binary(chunk);
  if (kBlocking) {
    // Blocking sockets: a send that timed out left a frame half written; the client drops
    // the connection rather than go on.
    CHECK(e.code == ws::Errc::closed);
    CHECK(!c.is_open());
    start_reading = true;
    return;
  }
  CHECK(e.code == ws::Errc::timeout);
  CHECK(c.is_open());  // poll: the rest stays queued, the connection goes on
  MESSAGE("queued when close() starts: " << c.buffered_amount() << " bytes");
  CHECK(c.buffered_amount() > 0);
  start_reading = true;
  const std::int64_t t0 = now_ms();
  CHECK(!c.close(1000, "bye"));
  const std::int64_t took = now_ms() - t0;
  CHECK(took < 2500);
  CHECK(c.close_code() == 1000);
  CHECK(eventually([&] { return peer_saw_close.load() != 0; }));
  CHECK(peer_saw_close.load() == 1000u);
}

TEST_CASE("net: after the server's close frame, receive waits at most close_timeout_ms for the TCP close") {
  FakeServer fake;  // sends a close frame, then never closes the TCP connection
  LIVE_REQUIRE(fake.start([](Raw& peer) { peer.send(server_frame(8, close_body(4000, "fake bye"))); }));
  ws::ClientOptions co = client_options();
  co.close_timeout_ms = 300;
  ws::Client c;
  LIVE_REQUIRE(connect(c, fake.url(), co));
  ws::Message m;
  const std::int64_t t0 = now_ms();
  ws::Error e = c.receive(m, 5000);
  const std::int64_t took = now_ms() - t0;
  CHECK(e.code == ws::Errc::closed);
  CHECK(took < 2000);
  CHECK(c.close_code() == 4000);
  CHECK(c.close_reason() == "fake bye");
  CHECK(!c.is_open());
}

TEST_CASE("net: receive with a zero timeout returns what has already arrived") {
  TestServer ts;
  echo_handler(ts.server);
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  ws::Message m;
  CHECK(c.receive(m, 0).code == ws::Errc::timeout);  // nothing yet
  CHECK(!c.send_text("zero"));
  sleep_ms(300);  // the echo is in our socket by now
  CHECK(!c.receive(m, 0));
  CHECK(m.data == "zero");
  // Also a message that takes several reads.
  const std::string big = text_pattern(300000);
  CHECK(!c.send_text(big));
  sleep_ms(500);
  CHECK(!c.receive(m, 0));
  CHECK((m.data == big));
  CHECK(c.receive(m, 0).code == ws::Errc::timeout);
}

TEST_CASE("net: a Client can connect again") {
  TestServer a, b;
  echo_handler(a.server);
  echo_handler(b.server);
  LIVE_REQUIRE(a.start());
  LIVE_REQUIRE(b.start());
  auto echo = [](ws::Client& c, const std::string& text) {
    ws::Message m;
    return !c.send_text(text) && !receive_data(c, m) && m.data == text;
  };
  ws::Client c;
  LIVE_REQUIRE(connect(c, a.url()));
  CHECK(echo(c, "one"));
  CHECK(!c.close());
  LIVE_REQUIRE(connect(c, b.url()));  // after a close
  CHECK(c.close_code() == ws::close_code::abnormal);  // reset by connect()
  CHECK(echo(c, "two"));
  // A bad URL fails without touching the open connection.
  CHECK(c.connect("nonsense", client_options()).code == ws::Errc::bad_url);
  CHECK(c.is_open());
  CHECK(echo(c, "three"));
  LIVE_REQUIRE(connect(c, a.url()));  // while open: the old connection is dropped
  CHECK(echo(c, "four"));
  CHECK(eventually([&] { return b.server.connection_count() == 0; }));
  // Host names resolve (localhost is in /etc/hosts).
  LIVE_REQUIRE(connect(c, "ws://localhost:" + std::to_string(a.port()) + "/"));
  CHECK(echo(c, "five"));
}

TEST_CASE("net: message over max_message closes with 1009") {
  ws::ServerOptions o = server_options();
  o.limits.max_message = 1000;
  std::mutex mu;
  std::vector<std::uint16_t> codes;
  TestServer ts(o);
  echo_handler(ts.server);
  ts.server.on_close([&](ws::Session&, std::uint16_t code, std::string_view) {
    std::lock_guard<std::mutex> g(mu);
    codes.push_back(code);
  });
  LIVE_REQUIRE(ts.start());

  SUBCASE("from the client, in one frame") {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url()));
    CHECK(!c.send_text(std::string(1000, 'a')));  // at the limit: fine
    ws::Message m;
    CHECK(!receive_data(c, m));
    CHECK(m.data.size() == 1000);
    CHECK(!c.send_binary(std::string(1001, 'b')));
    CHECK(c.receive(m, 5000).code == ws::Errc::closed);
    CHECK(c.close_code() == ws::close_code::message_too_big);
  }
  SUBCASE("from the client, in fragments") {
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url()));
    CHECK(!c.send_fragment(ws::Opcode::binary, std::string(600, 'a'), false));
    c.send_fragment(ws::Opcode::binary, std::string(600, 'b'), true);  // may find it closed
    ws::Message m;
    CHECK(c.receive(m, 5000).code == ws::Errc::closed);
    CHECK(c.close_code() == ws::close_code::message_too_big);
  }
  SUBCASE("to a client with a smaller limit") {
    ws::ClientOptions co = client_options();
    co.limits.max_message = 100;
    ws::Client c;
    LIVE_REQUIRE(connect(c, ts.url(), co));
    CHECK(!c.send_text(std::string(101, 'c')));  // the echo is too big for the client
    ws::Message m;
    CHECK(c.receive(m, 5000).code == ws::Errc::closed);
    CHECK(c.close_code() == ws::close_code::message_too_big);
  }
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return codes.size() == 1;
  }));
  std::lock_guard<std::mutex> g(mu);
  if (!codes.empty()) CHECK(codes[0] == ws::close_code::message_too_big);
}

TEST_CASE("net: close right after large sends completes the close handshake") {
  // The client's socket buffer is still full when close() queues the close frame: close()
  // must keep writing it while it waits, not only read.
  std::mutex mu;
  std::vector<std::uint16_t> codes;
  std::atomic<long> bytes{0};
  TestServer ts;
  ts.server.on_message([&](ws::Session&, const ws::Message& m) { bytes += static_cast<long>(m.data.size()); });
  ts.server.on_close([&](ws::Session&, std::uint16_t code, std::string_view) {
    std::lock_guard<std::mutex> g(mu);
    codes.push_back(code);
  });
  LIVE_REQUIRE(ts.start());
  ws::Client c;
  LIVE_REQUIRE(connect(c, ts.url()));
  const std::string big = pattern(4u << 20, 5);
  for (int i = 0; i < 4; ++i) CHECK(!c.send_binary(big));
  const std::int64_t t0 = now_ms();
  CHECK(!c.close(1000, "done"));
  const std::int64_t took = now_ms() - t0;
  CHECK(took < 1500);
  CHECK(c.close_code() == 1000);
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return codes.size() == 1;
  }));
  CHECK(bytes == 4 * static_cast<long>(big.size()));
  std::lock_guard<std::mutex> g(mu);
  if (!codes.empty()) CHECK(codes[0] == 1000);
}
