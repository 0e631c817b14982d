// Fuzz target: the HTTP request and response parsers, and the server's handshake answer.
// The first input byte picks the parser; the rest is fed in chunks whose sizes come from a
// seed, and the result must equal feeding it whole (the parsers accept any split).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../../websocket.hpp"

template <class Message>
static std::string parse(const std::uint8_t* data, std::size_t size, std::size_t chunk_seed,
                         std::size_t& used) {
  ws::HttpLimits limits;
  limits.max_line = 512;
  limits.max_headers = 16;
  limits.max_head = 2048;
  ws::HttpParser<Message> parser(limits);
  used = 0;
  std::size_t seed = chunk_seed;
  while (used < size && !parser.complete() && !parser.failed()) {
    std::size_t n = chunk_seed == 0 ? size - used : 1 + (seed % 7);
    seed = seed * 1103515245u + 12345u;
    if (n > size - used) n = size - used;
    std::size_t took = parser.feed(data + used, n);
    if (took > n) std::abort();
    used += took;
    if (took < n && !parser.complete() && !parser.failed()) std::abort();  // stopped early?
  }
  if (parser.failed()) {
    int status = parser.error_status();
    if (status != 400 && status != 414 && status != 431 && status != 505) std::abort();
    return "failed " + std::to_string(status);
  }
  if (!parser.complete()) return "incomplete";
  std::string out;
  for (const ws::HttpHeader& h : parser.message().fields) out += h.name + ":" + h.value + "\n";
  if constexpr (std::is_same<Message, ws::HttpRequest>::value) {
    ws::HttpResponse answer = ws::answer_handshake(parser.message(), {"chat", "superchat"});
    out += std::to_string(answer.status) + ws::serialize(answer);
    (void)parser.message().path();
    (void)parser.message().query();
  } else {
    std::string protocol;
    (void)ws::check_handshake_response(parser.message(), "dGhlIHNhbXBsZSBub25jZQ==", {"chat"}, protocol);
  }
  return out;
}

template <class Message>
static void check(const std::uint8_t* data, std::size_t size) {
  std::size_t used_whole = 0, used_split = 0;
  std::string whole = parse<Message>(data, size, 0, used_whole);
  std::string split = parse<Message>(data, size, size + 1, used_split);
  if (whole != split) std::abort();
  if (whole.rfind("failed", 0) != 0 && used_whole != used_split) std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1)
    check<ws::HttpResponse>(data + 1, size - 1);
  else
    check<ws::HttpRequest>(data + 1, size - 1);
  std::vector<ws::Extension> extensions;
  (void)ws::parse_extensions(std::string_view(reinterpret_cast<const char*>(data), size), extensions);
  ws::Url url;
  (void)ws::parse_url(std::string_view(reinterpret_cast<const char*>(data), size), url);
  return 0;
}
