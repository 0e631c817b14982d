// Two translation units of one program both include the header (make matrix): every
// definition in it must be inline or internal, or this fails to link.
#include "../../websocket.hpp"

std::size_t tu_b();

std::size_t tu_a() {
  ws::Connection c(ws::Role::server);
  c.assume_open();
  (void)c.send_text("a");
  ws::Server server;
  ws::Client client;
  return ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==").size() + c.buffered_amount();
}

int main() { return tu_a() + tu_b() == 2 * (28 + 3) ? 0 : 1; }
