// echo_server: echoes every text and binary message, on any path.
//
//   build/echo_server --port 9001 [--host 127.0.0.1]
//
// Negotiates the subprotocols "chat" and "superchat" (the first one the client lists),
// accepts messages up to 16 MiB, and stops cleanly on SIGINT/SIGTERM (close 1001 to all).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../websocket.hpp"

static ws::Server* g_server = nullptr;

extern "C" void on_signal(int) {
  if (g_server) g_server->stop();  // async-signal-safe
}

int main(int argc, char** argv) {
  std::string host;
  long port = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::strtol(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--host") == 0) host = argv[i + 1];
  }
  if (port < 0 || port > 65535 || argc % 2 == 0) {
    std::fprintf(stderr, "usage: %s --port N [--host H]\n", argv[0]);
    return 2;
  }

  ws::ServerOptions options;
  options.subprotocols = {"chat", "superchat"};
  options.limits.max_message = 16u * 1024u * 1024u;
  ws::Server server(options);
  server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });

  if (ws::Error e = server.listen(static_cast<std::uint16_t>(port), host)) {
    std::fprintf(stderr, "echo_server: %s\n", e.message());
    return 1;
  }
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("echo_server listening on %s:%u\n", host.empty() ? "0.0.0.0" : host.c_str(),
              static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  ws::Error e = server.run();
  g_server = nullptr;
  if (e) std::fprintf(stderr, "echo_server: %s\n", e.message());
  return e ? 1 : 0;
}
