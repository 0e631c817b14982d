// Footprint probe (make size): the smallest useful server. Echo every message until stopped.
#include "../../websocket.hpp"

int main() {
  ws::Server server;
  server.on_message([](ws::Session& s, const ws::Message& m) { s.send(m); });
  if (server.listen(9001)) return 1;
  return server.run() ? 1 : 0;
}
