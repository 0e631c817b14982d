// Footprint probe (make size): the smallest useful client. Connect, send, receive, close.
#include "../../websocket.hpp"

int main(int argc, char** argv) {
  ws::Client client;
  if (client.connect(argc > 1 ? argv[1] : "ws://127.0.0.1:9001/")) return 1;
  if (client.send_text("hello")) return 1;
  ws::Message m;
  if (client.receive(m, 1000)) return 1;
  return client.close(ws::close_code::normal) ? 1 : 0;
}
