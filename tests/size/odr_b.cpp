// The second translation unit of the two-TU link check (see odr_a.cpp).
#include "../../websocket.hpp"

std::size_t tu_b() {
  ws::Connection c(ws::Role::server);
  c.assume_open();
  (void)c.send_text("b");
  ws::Server server;
  ws::Client client;
  return ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==").size() + c.buffered_amount();
}
