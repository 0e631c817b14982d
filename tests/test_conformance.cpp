// RFC 6455 rules that need a live peer or a clock, for the rows of tests/RFC6455_RULES.md that
// test_connection.cpp and test_http.cpp cannot check by feeding bytes: the closing timing of
// §5.5.1/§7.1.1 (who closes TCP first, and how long each side waits), §7.2.1 (a lost
// transport), §10.2 (Origin), §10.3 (CSPRNG keys across connections), §10.7 (no reflection of
// request bytes), §4.1/§4.2.2 MUSTs on subprotocols and repeated fields, §10.4/§10.5 defaults
// and the token-auth hook of the README. Built once per driver like every suite.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "live_helpers.hpp"

#include <set>

using live::LiveServer;
using live::now_ms;
using live::RawPeer;
using live::ServerFrame;

namespace {

constexpr int kSlack = 1500;

// A hand-written server for one client connection: accepts, answers the opening handshake
// with 101, then runs `script` on the raw connection (on its own thread).
class FakeServer {
 public:
  explicit FakeServer(std::function<void(RawPeer&)> script) : script_(std::move(script)) {}
  ~FakeServer() {
    if (thread_.joinable()) thread_.join();
  }
  bool start(int connections = 1) {
    if (ws::net::listen("127.0.0.1", 0, listener_, port_)) return false;
    thread_ = std::thread([this, connections] {
      for (int i = 0; i < connections; ++i) {
        RawPeer p;
        if (!listener_.wait(false, 5000)) return;
        p.sock = ws::net::accept(listener_);
        std::string head = p.read_head();
        std::size_t k = head.find("Sec-WebSocket-Key: ");
        if (k == std::string::npos) return;
        std::string key = head.substr(k + 19, head.find("\r\n", k) - k - 19);
        {
          std::lock_guard<std::mutex> g(mu);
          keys.push_back(key);
        }
        p.send_all("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: " + ws::accept_key(key) + "\r\n\r\n");
        script_(p);
      }
    });
    return true;
  }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/"; }

  std::mutex mu;
  std::vector<std::string> keys;

 private:
  std::function<void(RawPeer&)> script_;
  ws::net::Socket listener_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

ws::ClientOptions client_options(int close_timeout_ms = 2000) {
  ws::ClientOptions o;
  o.connect_timeout_ms = 3000;
  o.send_timeout_ms = 3000;
  o.close_timeout_ms = close_timeout_ms;
  return o;
}

bool contains_nocase(std::string hay, std::string needle) {
  for (char& c : hay) c = ws::detail::to_lower(c);
  for (char& c : needle) c = ws::detail::to_lower(c);
  return hay.find(needle) != std::string::npos;
}

}  // namespace

// ---- §5.5.1, §7.1.1: the server closes TCP first, at once; a silent peer is dropped ---------

TEST_CASE("conformance §5.5.1/§7.1.1 server: after the close handshake the server closes TCP first, at once") {
  live::Watch w("server closes first", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  LIVE_REQUIRE(p.send_all(live::frame(0x8, live::close_payload(1000, "bye"))));
  ServerFrame f;
  LIVE_REQUIRE(p.next_frame(f));
  CHECK(f.opcode == 0x8);
  CHECK(f.close_code() == 1000);  // §5.5.1: a close is answered, echoing the code
  const std::int64_t t0 = now_ms();
  // We do not close: the server must (its half-close shows as EOF here), long before its
  // close timeout.
  std::int64_t took = p.wait_closed(3000);
  MESSAGE(std::string(live::kDriver) << ": server closed TCP " << took << " ms after its close frame");
  CHECK(took >= 0);
  CHECK(now_ms() - t0 < 250);
  CHECK(live::eventually([&] { return srv.close_count() == 1; }));
  CHECK(srv.last_close().code == 1000);
  CHECK(srv.last_close().reason == "bye");
  // Then it waits for our TCP close (so its last bytes are not lost to a reset), at most
  // close_timeout_ms: we never close, and the session still goes away.
  CHECK(live::eventually([&] { return srv.server.connection_count() == 0; }, 300 + kSlack));
}

TEST_CASE("conformance §7.1.7 server: a peer that never answers the server's close is dropped after close_timeout_ms") {
  live::Watch w("close timeout", 20);
  LiveServer srv;  // close_timeout_ms = 300
  std::atomic<bool> first{true};
  srv.on_open_extra = [&](ws::Session& s) {
    if (first.exchange(false)) s.close(4001, "go");
  };
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  ServerFrame f;
  LIVE_REQUIRE(p.next_frame(f));
  CHECK(f.opcode == 0x8);
  CHECK(f.close_code() == 4001);
  const std::int64_t t0 = now_ms();
  std::int64_t took = p.wait_closed(300 + kSlack);  // we never answer
  MESSAGE(std::string(live::kDriver) << ": dropped " << took << " ms after the unanswered close (timeout 300 ms)");
  CHECK(took >= 0);
  CHECK(now_ms() - t0 >= 250);
  CHECK(live::eventually([&] { return srv.close_count() == 1; }));
  CHECK(srv.last_close().code == ws::close_code::abnormal);
  CHECK(srv.last_close().reason.find("close_timeout_ms") != std::string::npos);
  CHECK(live::served(srv.port()));
}

TEST_CASE("conformance §7.1.1 server: idle ping, and a peer that answers nothing is dropped with a reason") {
  live::Watch w("idle ping", 20);
  ws::ServerOptions o = live::small_options();
  o.idle_ping_ms = 200;
  LiveServer srv(o);
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  ServerFrame f;
  LIVE_REQUIRE(p.next_frame(f, 2000));
  CHECK(f.opcode == 0x9);
  CHECK(p.wait_closed(400 + kSlack) >= 0);
  CHECK(live::eventually([&] { return srv.close_count() == 1; }));
  CHECK(srv.last_close().code == ws::close_code::abnormal);
  CHECK(srv.last_close().reason.find("idle_ping_ms") != std::string::npos);
}

// ---- §5.5.1, §7.1.1: the client waits for the server's TCP close, but not forever -----------

TEST_CASE("conformance §5.5.1/§7.1.1 client: close() waits for the server to close TCP first") {
  live::Watch w("client waits", 20);
  std::atomic<bool> client_closed_early{false};
  FakeServer fs([&](RawPeer& p) {
    ServerFrame f;
    if (!p.next_frame(f) || f.opcode != 0x8 || !f.masked) return;
    p.send_all(live::frame(0x8, live::close_payload(f.close_code()), true, false));
    // Hold the connection 300 ms: the client must not close its side meanwhile.
    if (!p.read_for(300)) client_closed_early = true;
    p.sock.close();
  });
  LIVE_REQUIRE(fs.start());
  ws::Client c;
  LIVE_REQUIRE(!c.connect(fs.url(), client_options(3000)));
  const std::int64_t t0 = now_ms();
  CHECK(!c.close(1000));
  const std::int64_t took = now_ms() - t0;
  MESSAGE(std::string(live::kDriver) << ": close() returned " << took << " ms after the call (server closed at 300 ms)");
  CHECK(!client_closed_early);
  CHECK(took >= 280);
  CHECK(took < 3000);
  CHECK(c.close_code() == 1000);
}

TEST_CASE("conformance §5.5.1/§7.1.1 client: a server that never closes TCP -> close() gives up after close_timeout_ms") {
  live::Watch w("client gives up", 20);
  std::atomic<std::int64_t> eof_after{-1};
  FakeServer fs([&](RawPeer& p) {
    ServerFrame f;
    if (!p.next_frame(f) || f.opcode != 0x8) return;
    p.send_all(live::frame(0x8, live::close_payload(f.close_code()), true, false));
    eof_after = p.wait_closed(5000);  // we never close: the client must
  });
  LIVE_REQUIRE(fs.start());
  ws::Client c;
  LIVE_REQUIRE(!c.connect(fs.url(), client_options(400)));
  const std::int64_t t0 = now_ms();
  CHECK(!c.close(1000));
  const std::int64_t took = now_ms() - t0;
  MESSAGE(std::string(live::kDriver) << ": close() gave up after " << took << " ms (close_timeout_ms 400)");
  CHECK(took >= 350);
  CHECK(took < 400 + kSlack);
  CHECK(live::eventually([&] { return eof_after.load() >= 0; }));
}

TEST_CASE("conformance §7.1.7 client: a server that never answers the close -> close() returns after close_timeout_ms") {
  live::Watch w("client close unanswered", 20);
  FakeServer fs([&](RawPeer& p) { p.wait_closed(5000); });
  LIVE_REQUIRE(fs.start());
  ws::Client c;
  LIVE_REQUIRE(!c.connect(fs.url(), client_options(400)));
  const std::int64_t t0 = now_ms();
  c.close(1000);
  const std::int64_t took = now_ms() - t0;
  CHECK(took >= 350);
  CHECK(took < 400 + kSlack);
  CHECK(c.close_code() == ws::close_code::abnormal);
}

TEST_CASE("conformance §7.2.1 client: a lost transport fails the connection with 1006") {
  live::Watch w("client transport lost", 20);
  FakeServer fs([&](RawPeer& p) {
    p.send_all(live::frame(0x2, "abc", false, false) + "\x00\x05", 1000);  // mid-message
    live::sleep_ms(50);
    p.reset_now();
  });
  LIVE_REQUIRE(fs.start());
  ws::Client c;
  LIVE_REQUIRE(!c.connect(fs.url(), client_options()));
  ws::Message m;
  ws::Error e = c.receive(m, 3000);
  CHECK(e.code == ws::Errc::closed);
  CHECK(c.close_code() == ws::close_code::abnormal);
  CHECK(!c.is_open());
}

// ---- §10.3, §5.3, §4.1: keys from the OS CSPRNG ---------------------------------------------

TEST_CASE("conformance §4.1/§5.3/§10.3 client: handshake keys and masking keys differ across connections and frames") {
  live::Watch w("csprng keys", 30);
  const int kConnections = 20, kFrames = 10;
  std::mutex mu;
  std::vector<std::string> masks;
  FakeServer fs([&](RawPeer& p) {
    for (int i = 0; i < kFrames; ++i) {
      // The raw bytes: header (2) + masking key (4) + payload.
      if (!p.read_until([](const std::string& s) { return s.size() >= 6 + 5; })) return;
      std::lock_guard<std::mutex> g(mu);
      masks.push_back(p.in.substr(2, 4));
      p.in.erase(0, 6 + 5);
    }
  });
  LIVE_REQUIRE(fs.start(kConnections));
  for (int i = 0; i < kConnections; ++i) {
    ws::Client c;
    LIVE_REQUIRE(!c.connect(fs.url(), client_options(200)));
    for (int j = 0; j < kFrames; ++j) CHECK(!c.send_text("hello"));
    // Let the server read them before the next connection.
    live::eventually([&] {
      std::lock_guard<std::mutex> g(mu);
      return masks.size() == static_cast<std::size_t>((i + 1) * kFrames);
    }, 3000);
  }
  std::lock_guard<std::mutex> g(mu);
  std::lock_guard<std::mutex> g2(fs.mu);
  std::set<std::string> distinct_keys(fs.keys.begin(), fs.keys.end());
  std::set<std::string> distinct_masks(masks.begin(), masks.end());
  MESSAGE(distinct_keys.size() << " distinct Sec-WebSocket-Key of " << fs.keys.size() << "; "
                               << distinct_masks.size() << " distinct masking keys of " << masks.size());
  CHECK(fs.keys.size() == static_cast<std::size_t>(kConnections));
  CHECK(distinct_keys.size() == fs.keys.size());
  for (const std::string& k : fs.keys) {
    std::string raw;
    CHECK(ws::base64_decode(k, raw));
    CHECK(raw.size() == 16);
  }
  CHECK(masks.size() == static_cast<std::size_t>(kConnections * kFrames));
  // 200 random 32-bit keys collide with probability ~5e-6.
  CHECK(distinct_masks.size() == masks.size());
  CHECK(distinct_masks.count(std::string(4, '\0')) == 0);
}

// ---- §10.2 Origin ---------------------------------------------------------------------------

TEST_CASE("conformance §10.2 server: allowed_origins -> 403 for another Origin, 101 for a listed one") {
  live::Watch w("origins", 20);
  ws::ServerOptions o = live::small_options();
  o.allowed_origins = {"https://app.example.com", "http://localhost:8080"};
  LiveServer srv(o);
  LIVE_REQUIRE(srv.start());
  struct Case {
    const char* origin_line;
    int status;
  } cases[] = {
      {"Origin: https://app.example.com\r\n", 101},
      {"Origin: HTTPS://APP.EXAMPLE.COM\r\n", 101},  // RFC 6454 origins compare case-insensitively here
      {"Origin: http://localhost:8080\r\n", 101},
      {"Origin: https://evil.example.com\r\n", 403},
      {"Origin: https://app.example.com.evil.com\r\n", 403},
      {"Origin: http://localhost:8081\r\n", 403},
      {"Origin: null\r\n", 403},
      {"", 101},  // no Origin: not a browser page
  };
  for (const Case& c : cases) {
    CAPTURE(c.origin_line);
    RawPeer p;
    LIVE_REQUIRE(p.connect(srv.port()));
    LIVE_REQUIRE(p.send_all(live::request("/", c.origin_line)));
    std::string head = p.read_head();
    CHECK(RawPeer::status_of(head) == c.status);
    if (c.status == 403) {
      p.read_for(200);
      CHECK(!contains_nocase(head + p.in, "evil"));  // no reflection of the Origin
      CHECK(!contains_nocase(head + p.in, "8081"));
      CHECK(p.wait_closed(2000) >= 0);
    }
  }
  // A ws::Client sends no Origin: it is served.
  CHECK(live::served(srv.port()));
}

// ---- §10.7: error responses never reflect request bytes -------------------------------------

TEST_CASE("conformance §10.7 server: error responses do not reflect request bytes") {
  live::Watch w("no reflection", 20);
  ws::ServerOptions o = live::small_options();
  o.allowed_origins = {"https://ok.example"};
  LiveServer srv(o);
  srv.server.route("/ws", ws::Handlers{nullptr, [](ws::Session& s, const ws::Message& m) { s.send(m); }, nullptr});
  LIVE_REQUIRE(srv.start());
  const std::string mark = "<script>xss_marker</script>";
  const std::string key = std::string("Sec-WebSocket-Key: ") + live::kKey + "\r\n";
  const std::string requests[] = {
      "GET /" + mark + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
          "Sec-WebSocket-Version: 13\r\n\r\n",                                          // routed nowhere? (default route: echo)
      "P" + mark + " / HTTP/1.1\r\nHost: x\r\n\r\n",                                  // bad method token
      "POST /" + mark + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",         // 405
      live::request("/", "X-Bad" + mark + ": 1\r\n"),                                 // bad header name
      live::request("/", "X: " + mark + "\x01\r\n"),                                  // control char
      "GET /" + mark + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
          "Sec-WebSocket-Version: 8" + mark + "\r\n\r\n",                             // 426
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + mark +
          "\r\nSec-WebSocket-Version: 13\r\n\r\n",                                    // 400 bad key
      live::request("/", "Origin: https://" + mark + "\r\n"),                         // 403
      "GET /" + mark + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n",                  // 414
      live::request("/", "X-Big: " + mark + std::string(9000, 'b') + "\r\n"),        // 431
      "GET / HTTP/2." + mark + "\r\n\r\n",                                            // 400/505
      "GET /plain" + mark + " HTTP/1.1\r\nHost: x\r\n\r\n",                           // 426/404 plain HTTP
  };
  int i = 0;
  for (const std::string& r : requests) {
    CAPTURE(i++);
    RawPeer p;
    LIVE_REQUIRE(p.connect(srv.port()));
    p.send_all(r);
    std::string head = p.read_head();
    p.read_for(100);
    const int status = RawPeer::status_of(head);
    CAPTURE(head);
    CHECK(status >= 100);
    if (status == 101) continue;  // the first request is a valid upgrade on the default route
    CHECK(status >= 400);
    CHECK(!contains_nocase(head + p.in, "xss_marker"));
    CHECK(!contains_nocase(head + p.in, "<script"));
  }
  CHECK(live::served(srv.port(), "/ws"));
}

// ---- §4.1, §4.2.2, §11.3: subprotocols and repeated fields ----------------------------------

TEST_CASE("conformance §4.1 client: offered subprotocols must be unique tokens") {
  ws::Url u;
  LIVE_REQUIRE(!ws::parse_url("ws://h/", u));
  ws::HttpRequest req;
  CHECK(ws::make_handshake_request(u, live::kKey, {"chat", "superchat"}, {}, req).code == ws::Errc::ok);
  CHECK(ws::make_handshake_request(u, live::kKey, {"chat", "chat"}, {}, req).code == ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, live::kKey, {"a b"}, {}, req).code == ws::Errc::bad_argument);
  ws::ConnectionOptions co;
  co.subprotocols = {"x", "y", "x"};
  ws::Connection c(ws::Role::client, co);
  CHECK(c.start_client("ws://h/").code == ws::Errc::bad_argument);
  CHECK(c.pending_output().empty());
}

namespace {
// Serves `request` to a server Connection; returns what it wrote and whether it opened.
std::string serve_request(std::string request, const ws::ConnectionOptions& co, bool& opened) {
  ws::Connection c(ws::Role::server, co);
  opened = false;
  c.receive(&request[0], request.size(), [&](const ws::Event& e) { opened |= e.type == ws::EventType::open; });
  return std::string(c.pending_output());
}
}  // namespace

TEST_CASE("conformance §4.2.2 server: a hook that picks a subprotocol the client did not offer gets 500") {
  bool opened = false;
  ws::ConnectionOptions co;
  co.on_handshake = [](const ws::HttpRequest&, ws::HttpResponse& r) { r.add("Sec-WebSocket-Protocol", "zzz"); };
  std::string out = serve_request(live::request("/", "Sec-WebSocket-Protocol: a, b\r\n"), co, opened);
  CHECK(!opened);
  CHECK(out.rfind("HTTP/1.1 500 ", 0) == 0);
  co.on_handshake = [](const ws::HttpRequest&, ws::HttpResponse& r) { r.add("Sec-WebSocket-Protocol", "b"); };
  out = serve_request(live::request("/", "Sec-WebSocket-Protocol: a, b\r\n"), co, opened);
  CHECK(opened);
  CHECK(out.find("Sec-WebSocket-Protocol: b\r\n") != std::string::npos);
  // Without an offer, no protocol may be chosen either (§4.2.2: the null value sends no header).
  out = serve_request(live::request("/"), co, opened);
  CHECK(!opened);
  CHECK(out.rfind("HTTP/1.1 500 ", 0) == 0);
}

TEST_CASE("conformance §4.2.1/§11.3.1 server: a repeated Sec-WebSocket-Key gets 400") {
  bool opened = false;
  std::string out = serve_request(
      live::request("/", std::string("Sec-WebSocket-Key: ") + live::kKey + "\r\n"), {}, opened);
  CHECK(!opened);
  CHECK(out.rfind("HTTP/1.1 400 ", 0) == 0);
}

TEST_CASE("conformance §4.1/§11.3 client: a repeated Sec-WebSocket-Accept or Sec-WebSocket-Protocol fails the handshake") {
  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    ws::ConnectionOptions co;
    co.subprotocols = {"a", "b"};
    ws::Connection c(ws::Role::client, co);
    LIVE_REQUIRE(!c.start_client("ws://h/"));
    std::string req(c.pending_output());
    c.consume_output(req.size());
    std::size_t k = req.find("Sec-WebSocket-Key: ") + 19;
    std::string accept = ws::accept_key(req.substr(k, req.find("\r\n", k) - k));
    std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: " + accept + "\r\n";
    resp += which == 0 ? "Sec-WebSocket-Accept: " + accept + "\r\n"
                       : std::string("Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n");
    resp += "\r\n";
    bool opened = false;
    c.receive(&resp[0], resp.size(), [&](const ws::Event& e) { opened |= e.type == ws::EventType::open; });
    CHECK(!opened);
    CHECK(c.state() == ws::Connection::State::closed);
    CHECK(c.error().code == ws::Errc::handshake_failed);
  }
}

TEST_CASE("conformance §4.1 client: nothing but the handshake is sent before the server's answer") {
  ws::Connection c(ws::Role::client);
  LIVE_REQUIRE(!c.start_client("ws://h/"));
  const std::size_t head = c.buffered_amount();
  CHECK(c.send_text("early").code == ws::Errc::not_open);
  CHECK(c.send_binary("early").code == ws::Errc::not_open);
  CHECK(c.ping("early").code == ws::Errc::not_open);
  CHECK(c.buffered_amount() == head);
}

// ---- §10.4, §10.5: defaults and the README's token check -----------------------------------

TEST_CASE("conformance §10.4: limits are on by default") {
  ws::Limits l;
  CHECK(l.max_message == 16u * 1024 * 1024);
  CHECK(l.max_frame == 16u * 1024 * 1024);
  CHECK(l.max_send_buffer == 32u * 1024 * 1024);
  CHECK(l.http.max_line == 8u * 1024);
  CHECK(l.http.max_headers == 100u);
  CHECK(l.http.max_head == 32u * 1024);
  ws::ServerOptions s;
  CHECK(s.handshake_timeout_ms == 10000);
  CHECK(s.close_timeout_ms == 5000);
  CHECK(s.send_timeout_ms == 10000);
  CHECK(s.max_connections == 10000u);
  CHECK(s.allowed_origins.empty());
}

TEST_CASE("conformance §10.5 server: token authentication in the handshake hook (README example)") {
  live::Watch w("token auth", 20);
  LiveServer srv;
  // The README's example, verbatim.
  srv.server.on_handshake([](const ws::HttpRequest& req, ws::HttpResponse& res) {
    if (res.status != 101) return;  // already refused (bad request, unknown path, Origin)
    if (req.get("Authorization") != "Bearer s3cret") {
      res = ws::HttpResponse();
      res.status = 401;
      res.add("WWW-Authenticate", "Bearer");
      res.body = "Unauthorized\n";
    }
  });
  LIVE_REQUIRE(srv.start());
  const std::string url = "ws://127.0.0.1:" + std::to_string(srv.port()) + "/";
  ws::ClientOptions o = client_options();
  {
    ws::Client c;
    CHECK(c.connect(url, o).code == ws::Errc::handshake_failed);
  }
  o.headers = {{"Authorization", "Bearer wrong"}};
  {
    ws::Client c;
    CHECK(c.connect(url, o).code == ws::Errc::handshake_failed);
  }
  o.headers = {{"Authorization", "Bearer s3cret"}};
  ws::Client c;
  LIVE_REQUIRE(!c.connect(url, o));
  CHECK(!c.send_text("in"));
  ws::Message m;
  CHECK(!c.receive(m, 3000));
  CHECK(m.data == "in");
  c.close();
  CHECK(srv.opens == 1);
}
