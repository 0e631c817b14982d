// Hostile peers against a live ws::Server (built once per driver by the Makefile): peers that
// stall, trickle, oversize, lie about lengths, flood, never read, reset, or churn. Each test
// checks the server's answer, its timing or its memory bound, and then that a normal client
// is still served. Timeouts and limits are small (live::small_options()): handshake 300 ms,
// close 300 ms, send 500 ms, messages 64 KiB, send buffer 256 KiB.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "live_helpers.hpp"

#include <random>

using live::LiveServer;
using live::RawPeer;
using live::ServerFrame;
using live::now_ms;

namespace {

constexpr int kHandshakeTimeout = 300;
// A timer fires within this much of its deadline (the blocking driver looks at the clock every
// 100 ms; sanitizers and a loaded 2-core machine add more).
constexpr int kSlack = 1500;

// The server must drop `p` at its handshake timeout, counted from the connect.
void check_dropped_at_handshake_timeout(RawPeer& p, std::int64_t connected_at) {
  std::int64_t took = p.wait_closed(kHandshakeTimeout + kSlack);
  CHECK(took >= 0);
  std::int64_t since_connect = now_ms() - connected_at;
  MESSAGE(std::string(live::kDriver) << ": dropped " << since_connect << " ms after the connect (timeout "
                        << kHandshakeTimeout << " ms)");
  CHECK(since_connect >= kHandshakeTimeout - 20);
  CHECK(since_connect <= kHandshakeTimeout + kSlack);
}

// Sends `data` as a request and expects `status`, then the connection closed by the server.
void check_rejected(LiveServer& srv, const std::string& data, int status) {
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.send_all(data));
  std::string head = p.read_head();
  CHECK(RawPeer::status_of(head) == status);
  CHECK(head.find("Connection: close") != std::string::npos);
  CHECK(p.wait_closed(3000) >= 0);
  CHECK(srv.opens == 0);
}

}  // namespace

TEST_CASE("hostile: a client that connects and sends nothing is dropped at the handshake timeout") {
  live::Watch w("silent client", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  check_dropped_at_handshake_timeout(p, now_ms());
  CHECK(p.in.empty());
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: half a handshake, then silence -> dropped at the handshake timeout") {
  live::Watch w("half handshake", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  const std::int64_t t0 = now_ms();
  std::string req = live::request();
  LIVE_REQUIRE(p.send_all(req.substr(0, req.size() / 2)));
  check_dropped_at_handshake_timeout(p, t0);
  CHECK(p.in.empty());  // no answer to a request that never ended
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: slowloris, one byte every 10 ms, never finishing -> dropped at the handshake timeout") {
  live::Watch w("slowloris", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  const std::int64_t t0 = now_ms();
  // Header lines that never end: the bytes keep coming, but the deadline counts from accept.
  std::string trickle = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 200; ++i) trickle += "X-Pad-" + std::to_string(i) + ": slow\r\n";
  std::size_t sent = 0;
  while (sent < trickle.size() && now_ms() - t0 < kHandshakeTimeout + kSlack) {
    if (!p.send_all(trickle.substr(sent, 1), 200)) break;
    ++sent;
    if (!p.read_for(10)) break;  // the server closed
  }
  CHECK(p.wait_closed(kHandshakeTimeout + kSlack) >= 0);
  const std::int64_t since = now_ms() - t0;
  MESSAGE(std::string(live::kDriver) << ": slowloris dropped after " << since << " ms and " << sent << " bytes");
  CHECK(since >= kHandshakeTimeout - 20);
  CHECK(since <= kHandshakeTimeout + kSlack);
  CHECK(sent < trickle.size());
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: oversized request line -> 414 and closed") {
  live::Watch w("long request line", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  check_rejected(srv, "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414);
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: oversized header line (over 8 KiB) -> 431 and closed") {
  live::Watch w("long header", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  check_rejected(srv, live::request("/", "X-Big: " + std::string(8300, 'b') + "\r\n"), 431);
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: too many header lines (over 100) -> 431 and closed") {
  live::Watch w("header count", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  std::string extra;
  for (int i = 0; i < 101; ++i) extra += "X-H" + std::to_string(i) + ": v\r\n";
  check_rejected(srv, live::request("/", extra), 431);
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: a head over 32 KiB in lines under 8 KiB -> 431 and closed") {
  live::Watch w("big head", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  std::string extra;
  for (int i = 0; i < 9; ++i) extra += "X-H" + std::to_string(i) + ": " + std::string(4000, 'h') + "\r\n";
  check_rejected(srv, live::request("/", extra), 431);
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: garbage bytes -> 400 and closed; garbage without a line end -> dropped") {
  live::Watch w("garbage", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  std::mt19937 rng(6455);
  std::string junk;
  for (int i = 0; i < 2000; ++i) junk += static_cast<char>(rng() & 0xFF);
  // Starts like a TLS ClientHello (a wss:// client on a ws:// port), then random bytes.
  std::string with_newline = "\x16\x03\x01\x02\x00\x01" + junk + "\r\n\r\n";
  with_newline.erase(std::remove(with_newline.begin(), with_newline.begin() + 100, '\n'),
                     with_newline.begin() + 100);
  check_rejected(srv, with_newline, 400);
  // No newline at all, under the line limit: nothing to answer, the handshake timeout drops it.
  std::string no_newline = junk;
  for (char& c : no_newline)
    if (c == '\n') c = 'n';
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  const std::int64_t t0 = now_ms();
  LIVE_REQUIRE(p.send_all(no_newline));
  check_dropped_at_handshake_timeout(p, t0);
  CHECK(srv.opens == 0);
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: a frame header announcing 2^63-1 bytes -> close 1009 on the header alone") {
  live::Watch w("2^63-1 frame", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  LIVE_REQUIRE(p.send_all(live::frame(0x2, "", true, true, 0x7FFFFFFFFFFFFFFFull)));
  ServerFrame f;
  LIVE_REQUIRE(p.next_frame(f));
  CHECK(f.opcode == 0x8);
  CHECK(!f.masked);
  CHECK(f.close_code() == ws::close_code::message_too_big);
  CHECK(p.wait_closed(3000) >= 0);  // §7.1.1: the server closes the TCP connection
  CHECK(live::eventually([&] { return srv.close_count() == 1; }));
  CHECK(srv.last_close().code == ws::close_code::message_too_big);
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: a message just over max_message -> 1009; exactly at it is echoed") {
  live::Watch w("message over the limit", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  const std::size_t limit = 64 * 1024;
  {
    // At the limit, in two fragments: accepted and echoed whole.
    RawPeer p;
    LIVE_REQUIRE(p.connect(srv.port()));
    LIVE_REQUIRE(p.handshake());
    LIVE_REQUIRE(p.send_all(live::frame(0x2, std::string(limit / 2, 'a'), false) +
                            live::frame(0x0, std::string(limit / 2, 'b'), true)));
    ServerFrame f;
    LIVE_REQUIRE(p.next_frame(f));
    CHECK(f.opcode == 0x2);
    CHECK(f.payload.size() == limit);
  }
  for (int fragmented = 0; fragmented < 2; ++fragmented) {
    CAPTURE(fragmented);
    RawPeer p;
    LIVE_REQUIRE(p.connect(srv.port()));
    LIVE_REQUIRE(p.handshake());
    std::string data = fragmented ? live::frame(0x1, std::string(limit / 2, 'a'), false) +
                                        live::frame(0x0, std::string(limit / 2 + 1, 'b'), true)
                                  : live::frame(0x1, std::string(limit + 1, 'a'));
    p.send_all(data);  // the server may close before it took every byte
    ServerFrame f;
    LIVE_REQUIRE(p.next_frame(f));
    CHECK(f.opcode == 0x8);
    CHECK(f.close_code() == ws::close_code::message_too_big);
    CHECK(p.wait_closed(3000) >= 0);
  }
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: a flood of pings from a peer that reads nothing -> bounded memory") {
  live::Watch w("ping flood", 30);
  ws::ServerOptions o = live::small_options();
  o.send_timeout_ms = 2000;  // the flood lasts about 1 s: the poll driver keeps the peer
  LiveServer srv(o);
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  const std::size_t rss0 = live::rss_bytes();
  // A sampler watches the server side of the connection while the flood runs.
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> max_buffered{0};
  std::thread sampler([&] {
    while (!stop) {
      for (const auto& s : srv.server.snapshot()) {
        std::size_t b = s->buffered_amount();
        if (b > max_buffered) max_buffered = b;
      }
      live::sleep_ms(1);
    }
  });
  const std::string ping = live::frame(0x9, std::string(125, 'p'));
  std::string burst;
  for (int i = 0; i < 512; ++i) burst += ping;  // 66 KiB of pings per write
  std::size_t sent = 0;
  const std::int64_t t0 = now_ms();
  std::string_view rest;
  while (now_ms() - t0 < 1000) {
    if (rest.empty()) rest = burst;
    long n = p.sock.send(rest.data(), rest.size());
    if (n > 0) {
      rest.remove_prefix(static_cast<std::size_t>(n));
      sent += static_cast<std::size_t>(n);
    } else if (n == ws::net::kWouldBlock) {
      p.sock.wait(true, 20);
    } else {
      break;  // the server dropped us (blocking driver: its pongs could not be written)
    }
  }
  stop = true;
  sampler.join();
  const std::size_t rss1 = live::rss_bytes();
  const std::size_t limit = srv.server.options().limits.max_send_buffer;
  MESSAGE(std::string(live::kDriver) << ": flooded " << sent / 131 << " pings (" << sent / 1024 << " KiB) in 1 s; max "
                        << "server send buffer " << max_buffered.load() << " bytes (limit " << limit
                        << "); RSS +" << (rss1 > rss0 ? (rss1 - rss0) / 1024 : 0) << " KiB");
  CHECK(sent > 2 * limit);  // the flood was larger than what may be buffered
  CHECK(max_buffered <= limit);
  if (!LIVE_SANITIZED) CHECK(rss1 < rss0 + 16 * 1024 * 1024);
  p.reset_now();
  CHECK(live::eventually([&] { return srv.server.connection_count() == 0; }));
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: a client that never reads while the server sends -> bounded, then dropped with a reason") {
  live::Watch w("never reads", 30);
  LiveServer srv;  // send buffer 256 KiB, send timeout 500 ms
  std::shared_ptr<ws::Session> session;
  std::mutex mu;
  srv.on_open_extra = [&](ws::Session& s) {
    std::lock_guard<std::mutex> g(mu);
    session = s.shared();
  };
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  LIVE_REQUIRE(live::eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return session != nullptr;
  }));
  std::shared_ptr<ws::Session> s;
  {
    std::lock_guard<std::mutex> g(mu);
    s = session;
  }
  // Another thread sends 16 KiB messages as fast as the server lets it.
  const std::string chunk(16 * 1024, 'x');
  const std::size_t limit = srv.server.options().limits.max_send_buffer;
  std::size_t max_buffered = 0, sent = 0, full = 0;
  ws::Errc last = ws::Errc::ok;
  const std::int64_t t0 = now_ms();
  while (now_ms() - t0 < 8000) {
    ws::Error e = s->send_binary(chunk);
    max_buffered = std::max(max_buffered, s->buffered_amount());
    if (!e) {
      ++sent;
      continue;
    }
    last = e.code;
    if (e.code != ws::Errc::send_buffer_full) break;  // closed: the server gave up
    ++full;
    live::sleep_ms(1);
  }
  const std::int64_t dropped_after = now_ms() - t0;
  MESSAGE(std::string(live::kDriver) << ": sent " << sent << " x 16 KiB, " << full << " refused as full, max buffered "
                        << max_buffered << " (limit " << limit << "), gave up after " << dropped_after
                        << " ms with Errc " << static_cast<int>(last));
  CHECK(max_buffered <= limit);
  CHECK(last == ws::Errc::closed);
  CHECK(dropped_after < 5000);
  if (!live::kBlocking) CHECK(full > 0);  // poll: the buffer filled and sends were refused
  CHECK(live::eventually([&] { return srv.close_count() == 1; }));
  live::Closed c = srv.last_close();
  CHECK(c.code == ws::close_code::abnormal);
  CHECK(c.reason.find("send_timeout_ms") != std::string::npos);
  MESSAGE("on_close: " << c.code << " \"" << c.reason << "\"");
  s.reset();
  {
    std::lock_guard<std::mutex> g(mu);
    session.reset();
  }
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: a peer that resets mid-frame -> on_close 1006, the session is gone") {
  live::Watch w("reset mid-frame", 20);
  LiveServer srv;
  LIVE_REQUIRE(srv.start());
  RawPeer p;
  LIVE_REQUIRE(p.connect(srv.port()));
  LIVE_REQUIRE(p.handshake());
  std::string f = live::frame(0x2, std::string(1000, 'z'));
  LIVE_REQUIRE(p.send_all(f.substr(0, 20)));  // header and 12 of 1000 payload bytes
  live::sleep_ms(50);
  p.reset_now();
  CHECK(live::eventually([&] { return srv.close_count() == 1; }));
  CHECK(srv.last_close().code == ws::close_code::abnormal);
  CHECK(live::eventually([&] { return srv.server.connection_count() == 0; }));
  CHECK(live::served(srv.port()));
}

TEST_CASE("hostile: 10,000 connect/disconnect cycles -> no fd or memory leak") {
  live::Watch w("10,000 cycles", 120);
  ws::ServerOptions o = live::small_options();
  LiveServer srv(o);
  LIVE_REQUIRE(srv.start());
  LIVE_REQUIRE(live::served(srv.port()));  // warm up: first-use allocations, thread caches
  LIVE_REQUIRE(live::eventually([&] { return srv.server.connection_count() == 0; }));
  const int fds0 = live::open_fds();
  {  // the counter sees sockets (on Windows it counts them by probing): a client's is one more
    RawPeer probe;
    LIVE_REQUIRE(probe.connect(srv.port()));
    CHECK(live::open_fds() > fds0);
    probe.reset_now();
  }
  LIVE_REQUIRE(live::eventually([&] { return live::open_fds() <= fds0; }, 3000));
  const std::size_t rss0 = live::rss_bytes();
  const std::string req = live::request();
  const int kCycles = 10000;
  int failures = 0, upgraded = 0;
  const std::int64_t t0 = now_ms();
  for (int i = 0; i < kCycles; ++i) {
    RawPeer p;
    if (!p.connect(srv.port())) {
      ++failures;
      continue;
    }
    // Three kinds, each ended by a reset (no TIME_WAIT piles up on the client ports):
    // connect only; half a request; a full handshake, then the reset.
    switch (i % 3) {
      case 0: break;
      case 1: p.send_all(req.substr(0, 40)); break;
      case 2:
        if (p.handshake()) ++upgraded;
        break;
    }
    p.reset_now();
    // Keep the backlog bounded: wait when the server falls behind.
    if (i % 256 == 255)
      live::eventually([&] { return srv.server.connection_count() < 64; }, 5000);
  }
  const std::int64_t took = now_ms() - t0;
  CHECK(live::eventually([&] { return srv.server.connection_count() == 0; }, 10000));
  // Blocking driver: a worker thread closes its socket before it finishes; give it a moment.
  live::eventually([&] { return live::open_fds() <= fds0; }, 3000);
  const int fds1 = live::open_fds();
  const std::size_t rss1 = live::rss_bytes();
  MESSAGE(std::string(live::kDriver) << ": " << kCycles << " cycles in " << took << " ms (" << upgraded
                        << " upgraded); fds " << fds0 << " -> " << fds1 << "; RSS "
                        << rss0 / 1024 << " -> " << rss1 / 1024 << " KiB");
  CHECK(failures == 0);
  CHECK(upgraded == kCycles / 3);
  CHECK(fds1 == fds0);
  if (!LIVE_SANITIZED) CHECK(rss1 < rss0 + 16 * 1024 * 1024);
  CHECK(srv.close_count() == static_cast<std::size_t>(upgraded) + 1);  // + the warm-up client
  CHECK(live::served(srv.port()));
}
