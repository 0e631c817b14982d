// chat: one port serves a web page on "/" and a broadcast chat on "/ws".
//
//   build/chat --port 8080      then open http://127.0.0.1:8080/ in a few browser tabs
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../websocket.hpp"

static const char kPage[] = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>websocket.hpp chat</title></head>
<body>
<h1>chat</h1>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus><button>send</button></form>
<script>
const log = document.getElementById('log');
const show = (text) => { const li = document.createElement('li'); li.textContent = text; log.appendChild(li); };
const socket = new WebSocket('ws://' + location.host + '/ws');
socket.onopen = () => show('* connected');
socket.onmessage = (e) => show(e.data);
socket.onclose = (e) => show('* closed ' + e.code);
document.getElementById('form').onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById('text');
  if (input.value) socket.send(input.value);
  input.value = '';
};
</script>
</body></html>
)";

static ws::Server* g_server = nullptr;
extern "C" void on_signal(int) {
  if (g_server) g_server->stop();
}

int main(int argc, char** argv) {
  long port = argc == 3 && std::strcmp(argv[1], "--port") == 0 ? std::strtol(argv[2], nullptr, 10) : -1;
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "usage: %s --port N\n", argv[0]);
    return 2;
  }
  ws::Server server;
  server.on_http([](const ws::HttpRequest& req, ws::HttpResponse& res) {
    if (req.method != "GET" || req.path() != "/") return;  // keep the prefilled 404
    res = ws::HttpResponse();
    res.status = 200;
    res.add("Content-Type", "text/html; charset=utf-8");
    res.add("Connection", "close");
    res.body = kPage;
  });
  ws::Handlers chat;
  chat.on_open = [&server](ws::Session& s) {
    server.broadcast_text("* user " + std::to_string(s.id()) + " joined");
  };
  chat.on_message = [&server](ws::Session& s, const ws::Message& m) {
    if (m.is_text()) server.broadcast_text("user " + std::to_string(s.id()) + ": " + m.data);
  };
  chat.on_close = [&server](ws::Session& s, std::uint16_t, std::string_view) {
    server.broadcast_text("* user " + std::to_string(s.id()) + " left");
  };
  server.route("/ws", chat);

  if (ws::Error e = server.listen(static_cast<std::uint16_t>(port))) {
    std::fprintf(stderr, "chat: %s\n", e.message());
    return 1;
  }
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("chat listening on http://127.0.0.1:%u/\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  return server.run() ? 1 : 0;
}
