// Tests for what an open connection costs the server in memory (websocket.hpp §6, Server).
//
// This binary replaces the global operator new and delete to count the bytes the program
// holds, so the figures are exact and do not depend on the allocator or on page sizes. The
// clients are bare sockets that send a fixed upgrade request and read the 101 into a stack
// buffer: after the first measurement they allocate nothing through operator new, so every
// byte counted is the server's.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "live_helpers.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

// ---- counting operator new / delete ---------------------------------------------------------

namespace heap {

std::atomic<long long> in_use{0};  // bytes asked for and not yet given back
constexpr std::size_t kHead = 16;  // the size lives in front; 16 keeps max_align_t alignment

void* take(std::size_t n) noexcept {
  auto* p = static_cast<unsigned char*>(std::malloc(n + kHead));
  if (!p) return nullptr;
  std::memcpy(p, &n, sizeof n);
  in_use.fetch_add(static_cast<long long>(n), std::memory_order_relaxed);
  return p + kHead;
}
void* take_or_die(std::size_t n) noexcept {
  void* p = take(n);
  if (!p) std::abort();  // out of memory in a test: nothing sensible to do
  return p;
}
void give(void* q) noexcept {
  if (!q) return;
  unsigned char* p = static_cast<unsigned char*>(q) - kHead;
  std::size_t n;
  std::memcpy(&n, p, sizeof n);
  in_use.fetch_sub(static_cast<long long>(n), std::memory_order_relaxed);
  std::free(p);
}

}  // namespace heap

void* operator new(std::size_t n) { return heap::take_or_die(n); }
void* operator new[](std::size_t n) { return heap::take_or_die(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return heap::take(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return heap::take(n); }
void operator delete(void* p) noexcept { heap::give(p); }
void operator delete[](void* p) noexcept { heap::give(p); }
void operator delete(void* p, std::size_t) noexcept { heap::give(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::give(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::give(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::give(p); }

namespace {

using live::eventually;
using live::kBlocking;
using live::sleep_ms;

// A test case that runs longer than 60 s ends the run, naming it.
REGISTER_LISTENER("memory-watchdog", 1, live::WatchdogListener<60>);

long long heap_now() { return heap::in_use.load(std::memory_order_relaxed); }

// Bare clients: `socks` and `request` are set up before any measurement.
struct Clients {
  std::vector<ws::net::Socket> socks;
  std::string request = live::request();
  std::uint16_t port = 0;

  explicit Clients(std::size_t capacity) { socks.reserve(capacity); }

  // Connects one more and completes its handshake (the 101 is read into a stack buffer).
  bool open_one() {
    socks.emplace_back();
    ws::net::Socket& s = socks.back();
    if (ws::net::connect("127.0.0.1", port, 5000, s)) return false;
    std::string_view left = request;
    const std::int64_t deadline = live::now_ms() + 5000;
    while (!left.empty()) {
      long n = s.send(left.data(), left.size());
      if (n > 0) left.remove_prefix(static_cast<std::size_t>(n));
      else if (n != ws::net::kWouldBlock || live::now_ms() > deadline || !s.wait(true, 100)) return false;
    }
    char buf[512];
    std::size_t have = 0;
    while (have < 4 || std::memcmp(buf + have - 4, "\r\n\r\n", 4) != 0) {
      if (have == sizeof buf || live::now_ms() > deadline) return false;
      if (!s.wait(false, 100)) continue;
      long n = s.recv(buf + have, 1);  // byte by byte: nothing after the head is taken
      if (n == 0) return false;
      if (n > 0) have += static_cast<std::size_t>(n);
    }
    return std::strncmp(buf, "HTTP/1.1 101", 12) == 0;
  }
  bool open(int n) {
    for (int i = 0; i < n; ++i)
      if (!open_one()) return false;
    return true;
  }
  // Reads and drops what the server sent, until `bytes` have come; false on timeout.
  bool drain(std::size_t bytes_each) {
    char buf[4096];
    for (ws::net::Socket& s : socks) {
      std::size_t got = 0;
      const std::int64_t deadline = live::now_ms() + 5000;
      while (got < bytes_each) {
        if (live::now_ms() > deadline) return false;
        if (!s.wait(false, 100)) continue;
        long n = s.recv(buf, sizeof buf);
        if (n <= 0 && n != ws::net::kWouldBlock) return false;
        if (n > 0) got += static_cast<std::size_t>(n);
      }
    }
    return true;
  }
};

// The heap once it has held still for 300 ms (the server releases a connection's buffers at
// its next round after the handshake, or after a quiet second).
long long settled_heap() {
  long long last = heap_now();
  for (int i = 0; i < 100; ++i) {
    sleep_ms(300);
    long long now = heap_now();
    if (now == last) return now;
    last = now;
  }
  return last;
}

}  // namespace

// The budget behind the benchmark's idle row: with the poll driver an open connection at rest
// is a Session (with its Connection, shared_ptr count included) and its slots in the server's
// lists, and nothing else: no buffers, no request, no lock of its own. The blocking driver
// adds a thread per connection, with its 64 KiB read buffer.
TEST_CASE("memory: an open connection at rest holds little of the server's heap") {
  live::LiveServer ls;
  LIVE_REQUIRE(ls.start());
  constexpr int kWarm = 20, kMore = 200;
  Clients c(kWarm + kMore);
  c.port = ls.port();
  LIVE_REQUIRE(c.open(kWarm));  // first allocations of every kind happen here
  CHECK(eventually([&] { return ls.opens == kWarm; }));
  const long long before = settled_heap();
  LIVE_REQUIRE(c.open(kMore));
  CHECK(eventually([&] { return ls.opens == kWarm + kMore; }));
  const long long after = settled_heap();
  const long long each = (after - before) / kMore;
  MESSAGE(std::string(live::kDriver) << ": " << each << " bytes of heap per open connection at rest");
  if (kBlocking)
    CHECK(each <= static_cast<long long>(ws::detail::kReadSize) + 2048);
  else
    CHECK(each <= 256);
  CHECK(each > 0);  // the count sees the sessions at all
}

// A connection the server only writes to (notifications) is quiet too: its send buffer goes
// a second after the last write, though the peer sends nothing.
TEST_CASE("memory: a connection the server only writes to gives its buffers back") {
  live::LiveServer ls;
  LIVE_REQUIRE(ls.start());
  constexpr int kConns = 50;
  constexpr std::size_t kSize = 16 * 1024;  // fits the socket buffers: written at once
  Clients c(kConns);
  c.port = ls.port();
  LIVE_REQUIRE(c.open(kConns));
  CHECK(eventually([&] { return ls.opens == kConns; }));
  const std::string message(kSize, 'n');
  const long long before = settled_heap();
  CHECK(ls.server.broadcast_text(message) == static_cast<std::size_t>(kConns));
  CHECK(c.drain(kSize + 4));  // header: 4 bytes for 16 KiB
  const long long busy = heap_now();
  MESSAGE("heap: " << before << " at rest, " << busy << " after the broadcast");
  // Each session's output buffer still holds its capacity (the test sees it)...
  CHECK(busy - before >= static_cast<long long>(kConns * kSize));
  // ...until a quiet second passes (a few, on a slow machine).
  CHECK(eventually([&] { return heap_now() - before <= kConns * 64; }, 10000));
  MESSAGE("heap: " << heap_now() << " a quiet second later");
}
