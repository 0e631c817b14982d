// websocketpp_echo.cpp: websocketpp echo server on Asio, one thread (a benchmark peer).
//
//   websocketpp_echo --port N [--host 127.0.0.1]
//
// The plain (no TLS) asio config, logging off, each message sent back with its opcode.
// websocketpp validates UTF-8 in text messages.
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

typedef websocketpp::server<websocketpp::config::asio> server;

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--host") == 0) host = argv[i + 1];
  }
  if (port < 0) return std::fprintf(stderr, "usage: websocketpp_echo --port N [--host H]\n"), 2;
  server s;
  s.clear_access_channels(websocketpp::log::alevel::all);
  s.clear_error_channels(websocketpp::log::elevel::all);
  s.init_asio();
  s.set_reuse_addr(true);
  s.set_listen_backlog(4096);
  s.set_max_message_size(64u << 20);
  s.set_tcp_post_init_handler([&s](websocketpp::connection_hdl h) {
    boost::system::error_code ec;
    s.get_con_from_hdl(h)->get_raw_socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
  });
  s.set_message_handler([&s](websocketpp::connection_hdl h, server::message_ptr m) {
    websocketpp::lib::error_code ec;
    s.send(h, m->get_payload(), m->get_opcode(), ec);
  });
  s.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), static_cast<unsigned short>(port)));
  s.start_accept();
  boost::asio::signal_set signals(s.get_io_service(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { s.stop(); });
  std::printf("websocketpp_echo listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  s.run();
}
