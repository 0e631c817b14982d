// Fuzz target: a Connection, in either role, fed arbitrary bytes after its opening handshake.
// Differential check: the same input fed whole and in pseudo-random chunks must give the
// same events and the same output bytes (for a server; a client masks with random keys, so
// only its events are compared). The chunked run also calls release_memory() between chunks
// and inside the handler, which must change nothing but memory.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../websocket.hpp"

namespace {

struct Run {
  std::string events;
  std::string output;
};

Run feed(ws::Role role, bool streaming, const std::uint8_t* data, std::size_t size, std::size_t seed) {
  ws::ConnectionOptions options;
  options.limits.max_message = 4096;
  options.limits.max_frame = 2048;
  options.limits.max_send_buffer = 1 << 16;
  options.stream_fragments = streaming;
  ws::Connection conn(role, options);
  conn.assume_open();
  Run run;
  std::vector<std::uint8_t> copy(data, data + size);  // receive() unmasks in place
  std::size_t at = 0;
  std::string piece;  // streaming pieces are joined, so chunking does not change the events
  auto on_event = [&](const ws::Event& e) {
    if (streaming && (e.type == ws::EventType::text || e.type == ws::EventType::binary)) {
      piece.append(e.data.data(), e.data.size());
      if (!e.fin) return;
      run.events += std::to_string(static_cast<int>(e.type)) + ":" + piece + "|";
      piece.clear();
      return;
    }
    run.events += std::to_string(static_cast<int>(e.type)) + "/" + std::to_string(e.code) + ":";
    run.events.append(e.data.data(), e.data.size());
    run.events += "|";
    if (e.type == ws::EventType::text) (void)conn.send_text(e.data);  // echo, like a server
    if (seed != 0) conn.release_memory();  // a no-op for what receive() is using
  };
  while (at < size) {
    std::size_t n = seed == 0 ? size - at : 1 + seed % 23;
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    if (n > size - at) n = size - at;
    std::size_t used = conn.receive(copy.data() + at, n, on_event);
    if (used > n) std::abort();
    if (conn.state() == ws::Connection::State::closed) break;
    if (used != n) std::abort();  // an open connection takes every byte
    at += n;
    if (seed % 3 == 0) conn.release_memory();
  }
  run.output = std::string(conn.pending_output());
  conn.receive_eof(on_event);
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const ws::Role role = (data[0] & 1) ? ws::Role::client : ws::Role::server;
  const bool streaming = (data[0] & 2) != 0;
  Run whole = feed(role, streaming, data + 1, size - 1, 0);
  Run split = feed(role, streaming, data + 1, size - 1, size);
  if (whole.events != split.events) std::abort();
  if (role == ws::Role::server && whole.output != split.output) std::abort();
  return 0;
}
