// wscat: a small command-line WebSocket client.
//
//   build/wscat URL [--protocol P]...   sends each stdin line as a text message, prints each
//                                       message received on its own line; at end of input,
//                                       closes with 1000 and exits 0 after the close handshake
//   build/wscat --echo URL              sends every message it receives back, until the
//                                       peer closes; then exits 0
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../websocket.hpp"

static void print(const ws::Message& m) {
  std::fwrite(m.data.data(), 1, m.data.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  std::string url;
  bool echo = false;
  ws::ClientOptions options;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--echo") == 0) echo = true;
    else if (std::strcmp(argv[i], "--protocol") == 0 && i + 1 < argc) options.subprotocols.push_back(argv[++i]);
    else if (url.empty()) url = argv[i];
    else url.clear(), i = argc;
  }
  if (url.empty()) {
    std::fprintf(stderr, "usage: %s URL [--protocol P]...  |  %s --echo URL\n", argv[0], argv[0]);
    return 2;
  }
  ws::Client client;
  if (ws::Error e = client.connect(url, options)) {
    std::fprintf(stderr, "wscat: %s\n", e.message());
    return 1;
  }

  ws::Message m;
  if (echo) {
    while (!client.receive(m)) {
      if (m.type == ws::EventType::pong) continue;
      if (ws::Error e = client.send(m)) {
        std::fprintf(stderr, "wscat: %s\n", e.message());
        return 1;
      }
    }
    return client.close_code() == ws::close_code::abnormal ? 1 : 0;
  }

  // stdin is read on its own thread; this one owns the client.
  std::mutex mutex;
  std::vector<std::string> lines;
  bool input_done = false;
  std::thread reader([&] {
    std::string line;
    while (std::getline(std::cin, line)) {
      std::lock_guard<std::mutex> g(mutex);
      lines.push_back(line);
    }
    std::lock_guard<std::mutex> g(mutex);
    input_done = true;
  });
  bool done = false;
  while (!done) {
    std::vector<std::string> batch;
    {
      std::lock_guard<std::mutex> g(mutex);
      batch.swap(lines);
      done = input_done;
    }
    for (const std::string& line : batch) {
      if (ws::Error e = client.send_text(line)) {
        std::fprintf(stderr, "wscat: %s\n", e.message());
        reader.detach();
        return 1;
      }
    }
    ws::Error e = client.receive(m, done ? 0 : 20);
    if (!e && m.type != ws::EventType::pong) print(m);
    if (e.code == ws::Errc::closed) {
      std::fprintf(stderr, "wscat: closed by the server (%u)\n", client.close_code());
      reader.detach();
      return 1;
    }
  }
  reader.join();
  ws::Error e = client.close(ws::close_code::normal);
  while (!client.receive(m, 0))  // messages that came before the server's close frame
    if (m.type != ws::EventType::pong) print(m);
  if (e || client.close_code() != ws::close_code::normal) {
    std::fprintf(stderr, "wscat: close handshake failed (%u)\n", client.close_code());
    return 1;
  }
  return 0;
}
