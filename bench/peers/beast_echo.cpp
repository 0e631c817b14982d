// beast_echo.cpp: Boost.Beast WebSocket echo server, one thread (a benchmark peer).
//
//   beast_echo --port N [--host 127.0.0.1]
//
// One io_context run by one thread; each session reads a whole message into a flat_buffer
// and writes it back with the same text/binary flag, then reads the next one. No compression,
// no auto-fragmenting, messages up to 64 MiB. Beast validates UTF-8 in text messages.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : ws_(std::move(s)) {}
  void start() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.auto_fragment(false);
    ws_.read_message_max(64u << 20);
    ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->read();
    });
  }

 private:
  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      self->ws_.text(self->ws_.got_text());
      self->ws_.async_write(self->buf_.data(), [self](beast::error_code ec2, std::size_t) {
        if (ec2) return;
        self->buf_.consume(self->buf_.size());
        self->read();
      });
    });
  }
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buf_;
};

static void accept(tcp::acceptor& a) {
  a.async_accept([&a](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(s))->start();
    }
    accept(a);
  });
}

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--host") == 0) host = argv[i + 1];
  }
  if (port < 0) return std::fprintf(stderr, "usage: beast_echo --port N [--host H]\n"), 2;
  asio::io_context ioc(1);
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address(host), static_cast<unsigned short>(port)));
  accept(a);
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
  std::printf("beast_echo listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  ioc.run();
}
