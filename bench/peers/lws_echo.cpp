// lws_echo.cpp: libwebsockets echo server, one thread, its default poll() loop (a benchmark peer).
//
//   lws_echo --port N [--host 127.0.0.1]
//
// Collects each message (lws hands it over in pieces of up to rx_buffer_size), queues it, and
// writes it back as one frame with the same opcode when the connection is writable. UTF-8
// validation of text messages is switched on (LWS_SERVER_OPTION_VALIDATE_UTF8), as the other
// peers do it. Logging: errors only.
#include <libwebsockets.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>

namespace {

struct Out {
  std::string bytes;  // LWS_PRE bytes of headroom, then the payload
  bool binary;
};

struct Session {
  std::string cur = std::string(LWS_PRE, '\0');
  bool cur_binary = false;
  std::deque<Out> queue;
};

struct Pss {
  Session* s;
};

volatile std::sig_atomic_t interrupted = 0;
lws_context* g_context = nullptr;
extern "C" void on_signal(int) {
  interrupted = 1;
  if (g_context) lws_cancel_service(g_context);
}

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  Pss* pss = static_cast<Pss*>(user);
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      pss->s = new Session;
      break;
    case LWS_CALLBACK_CLOSED:
      delete pss->s;
      pss->s = nullptr;
      break;
    case LWS_CALLBACK_RECEIVE: {
      Session& s = *pss->s;
      if (lws_is_first_fragment(wsi)) s.cur_binary = lws_frame_is_binary(wsi) != 0;
      s.cur.append(static_cast<const char*>(in), len);
      if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        s.queue.push_back(Out{std::move(s.cur), s.cur_binary});
        s.cur.assign(LWS_PRE, '\0');
        lws_callback_on_writable(wsi);
      }
      break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      Session& s = *pss->s;
      if (s.queue.empty()) break;
      Out& o = s.queue.front();
      size_t n = o.bytes.size() - LWS_PRE;
      int m = lws_write(wsi, reinterpret_cast<unsigned char*>(&o.bytes[LWS_PRE]), n,
                        o.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
      if (m < static_cast<int>(n)) return -1;
      s.queue.pop_front();
      if (!s.queue.empty()) lws_callback_on_writable(wsi);
      break;
    }
    default:
      break;
  }
  return 0;
}

lws_protocols protocols[] = {
    {"echo", callback, sizeof(Pss), 64 * 1024, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--host") == 0) host = argv[i + 1];
  }
  if (port < 0) return std::fprintf(stderr, "usage: lws_echo --port N [--host H]\n"), 2;
  lws_set_log_level(LLL_ERR, nullptr);
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = host.c_str();
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
  info.count_threads = 1;
  info.fd_limit_per_thread = 4096;
  info.ka_time = 0;
  g_context = lws_create_context(&info);
  if (!g_context) return std::fprintf(stderr, "lws_echo: lws_create_context failed\n"), 1;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("lws_echo listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  while (!interrupted && lws_service(g_context, 0) >= 0) {
  }
  lws_context_destroy(g_context);
  return 0;
}
