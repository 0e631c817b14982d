#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include "../websocket.hpp"

// Tests for §1 HTTP upgrade of websocket.hpp: the incremental request/response parser and its
// limits, headers, serializers, the server and client sides of the opening handshake,
// Sec-WebSocket-Extensions parsing and ws:// URLs.

#include <random>
#include <string>
#include <vector>

// Like REQUIRE (which doctest does not offer under -fno-exceptions): check, and on failure
// leave the test case. The condition must be free of side effects (it is evaluated twice).
#define ENSURE(...)              \
  do {                           \
    CHECK(__VA_ARGS__);          \
    if (!(__VA_ARGS__)) return;  \
  } while (false)

namespace {

// ---- helpers -------------------------------------------------------------------------------

// The RFC 6455 §1.3 sample handshake, one header per element.
const char* const kSampleStart = "GET /chat HTTP/1.1";
const std::vector<std::string> kSampleHeaders = {
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Version: 13",
};
const char* const kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
const char* const kSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string head(const std::string& start, const std::vector<std::string>& lines,
                 const char* eol = "\r\n") {
  std::string out = start + eol;
  for (const std::string& l : lines) out += l + eol;
  out += eol;
  return out;
}

std::string sample_head() { return head(kSampleStart, kSampleHeaders); }

// The sample header lines without those whose name is `name`, plus `extra` lines.
std::vector<std::string> sample_without(const std::string& name,
                                        const std::vector<std::string>& extra = {}) {
  std::vector<std::string> out;
  for (const std::string& l : kSampleHeaders)
    if (!ws::detail::iequals(l.substr(0, l.find(':')), name)) out.push_back(l);
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

// A canonical text form of a parsed request, for comparing parses.
std::string dump(const ws::HttpRequest& r) {
  std::string out = r.method + "|" + r.target + "|" + std::to_string(r.minor_version);
  for (const ws::HttpHeader& h : r.fields) out += "|" + h.name + "=" + h.value;
  return out;
}

template <class Parser>
Parser parse_whole(const std::string& data, ws::HttpLimits limits = {}) {
  Parser p(limits);
  p.feed(data.data(), data.size());
  return p;
}

ws::RequestParser parse_request(const std::string& data, ws::HttpLimits limits = {}) {
  return parse_whole<ws::RequestParser>(data, limits);
}

ws::ResponseParser parse_response(const std::string& data, ws::HttpLimits limits = {}) {
  return parse_whole<ws::ResponseParser>(data, limits);
}

// Feeds `data` in pieces whose sizes `next()` picks; stops when the parser uses less than it
// was given (the head ended, or an error). Returns the bytes used.
template <class Parser, class Next>
std::size_t feed_pieces(Parser& p, const std::string& data, Next next) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::size_t n = std::min(next(), data.size() - pos);
    const std::size_t used = p.feed(data.data() + pos, n);
    pos += used;
    if (used < n) break;
  }
  return pos;
}

template <class Parser>
Parser parse_bytewise(const std::string& data, ws::HttpLimits limits = {}) {
  Parser p(limits);
  feed_pieces(p, data, [] { return std::size_t{1}; });
  return p;
}

// Parses a request head that must be complete, and answers it.
ws::HttpResponse answer(const std::string& data, const std::vector<std::string>& protocols = {}) {
  ws::RequestParser p = parse_request(data);
  CHECK(p.complete());
  CHECK_FALSE(p.failed());
  return ws::answer_handshake(p.message(), protocols);
}

void set_field(ws::HttpHeaders& h, const std::string& name, const std::string& value) {
  for (ws::HttpHeader& f : h.fields)
    if (ws::detail::iequals(f.name, name)) {
      f.value = value;
      return;
    }
  h.add(name, value);
}

void remove_field(ws::HttpHeaders& h, const std::string& name) {
  std::vector<ws::HttpHeader> kept;
  for (const ws::HttpHeader& f : h.fields)
    if (!ws::detail::iequals(f.name, name)) kept.push_back(f);
  h.fields = kept;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

// =====================================================================================
// Request parser: whole and split feeding
// =====================================================================================

TEST_CASE("http parser: a full valid request parsed whole") {
  const std::string data = sample_head();
  ws::RequestParser p;
  CHECK(p.feed(data.data(), data.size()) == data.size());
  ENSURE(p.complete());
  CHECK_FALSE(p.failed());
  CHECK(p.error().code == ws::Errc::ok);
  const ws::HttpRequest& r = p.message();
  CHECK(r.method == "GET");
  CHECK(r.target == "/chat");
  CHECK(r.minor_version == 1);
  ENSURE(r.fields.size() == 7);
  CHECK(r.fields[0].name == "Host");
  CHECK(r.fields[0].value == "server.example.com");
  CHECK(r.fields[3].name == "Sec-WebSocket-Key");
  CHECK(r.fields[3].value == kSampleKey);
  CHECK(r.get("Sec-WebSocket-Protocol") == "chat, superchat");
  CHECK(r.get("Sec-WebSocket-Version") == "13");
}

TEST_CASE("http parser: feed() stops at the end of the head and leaves trailing bytes") {
  const std::string data = sample_head();
  const std::string trailer = "\x81\x05hello\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  const std::string all = data + trailer;
  ws::RequestParser p;
  CHECK(p.feed(all.data(), all.size()) == data.size());
  CHECK(p.complete());
  CHECK(p.message().fields.size() == 7);
  // Once complete, nothing more is consumed.
  CHECK(p.feed(trailer.data(), trailer.size()) == 0);
  CHECK(p.message().target == "/chat");
  // HTTP/1.0 request line in the trailer did not leak into the message.
  CHECK(p.message().minor_version == 1);
}

TEST_CASE("http parser: every split into two pieces gives the same result") {
  const std::string data = sample_head();
  const std::string all = data + "\x82\x7e\n\n trailing";
  const std::string expected = dump(parse_request(data).message());
  for (std::size_t at = 0; at <= all.size(); ++at) {
    CAPTURE(at);
    ws::RequestParser p;
    const std::size_t first = p.feed(all.data(), at);
    CHECK(first == std::min(at, data.size()));
    std::size_t second = 0;
    if (first == at) second = p.feed(all.data() + at, all.size() - at);
    CHECK(first + second == data.size());
    CHECK(p.complete());
    CHECK(dump(p.message()) == expected);
  }
}

TEST_CASE("http parser: one byte at a time gives the same result") {
  const std::string data = sample_head();
  const std::string expected = dump(parse_request(data).message());
  ws::RequestParser p;
  std::size_t used = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    CHECK_FALSE(p.complete());
    used += p.feed(&data[i], 1);
  }
  CHECK(used == data.size());
  CHECK(p.complete());
  CHECK(dump(p.message()) == expected);
  const char extra = 'x';
  CHECK(p.feed(&extra, 1) == 0);
}

TEST_CASE("http parser: random chunks (fixed seed) give the same result") {
  const std::string data = sample_head();
  const std::string all = data + "\x81\x00\r\n";
  const std::string expected = dump(parse_request(data).message());
  std::mt19937 rng(42);
  for (int rep = 0; rep < 300; ++rep) {
    ws::RequestParser p;
    const std::size_t used =
        feed_pieces(p, all, [&] { return static_cast<std::size_t>(rng() % 23); });
    CHECK(used == data.size());
    CHECK(p.complete());
    CHECK(dump(p.message()) == expected);
  }
}

TEST_CASE("http parser: feeding nothing is harmless") {
  ws::RequestParser p;
  CHECK(p.feed("", 0) == 0);
  CHECK_FALSE(p.complete());
  CHECK_FALSE(p.failed());
  const std::string data = sample_head();
  CHECK(p.feed(data.data(), data.size()) == data.size());
  CHECK(p.complete());
}

TEST_CASE("http parser: bare LF line endings are accepted") {
  const std::string crlf = sample_head();
  const std::string lf = head(kSampleStart, kSampleHeaders, "\n");
  ws::RequestParser p = parse_request(lf);
  CHECK(p.complete());
  CHECK(dump(p.message()) == dump(parse_request(crlf).message()));
  CHECK(parse_bytewise<ws::RequestParser>(lf).complete());
  // Mixed endings.
  const std::string mixed = "GET /x HTTP/1.1\nHost: h\r\nUpgrade: websocket\n\r\n";
  ws::RequestParser m;
  CHECK(m.feed(mixed.data(), mixed.size()) == mixed.size());
  CHECK(m.complete());
  CHECK(m.message().get("Host") == "h");
  CHECK(m.message().get("Upgrade") == "websocket");
}

TEST_CASE("http parser: leading empty lines are ignored") {
  const std::string data = "\r\n\n\r\n" + sample_head();
  ws::RequestParser p;
  CHECK(p.feed(data.data(), data.size()) == data.size());
  CHECK(p.complete());
  CHECK(dump(p.message()) == dump(parse_request(sample_head()).message()));
}

TEST_CASE("http parser: a request without headers completes") {
  ws::RequestParser p = parse_request("GET / HTTP/1.1\r\n\r\n");
  CHECK(p.complete());
  CHECK(p.message().fields.empty());
  CHECK(p.message().target == "/");
}

TEST_CASE("http parser: incomplete heads are neither complete nor failed") {
  const std::string data = sample_head();
  for (std::size_t cut : {std::size_t{1}, std::size_t{18}, data.size() - 2, data.size() - 1}) {
    ws::RequestParser p = parse_request(data.substr(0, cut));
    CAPTURE(cut);
    CHECK_FALSE(p.complete());
    CHECK_FALSE(p.failed());
  }
}

// =====================================================================================
// Request parser: limits
// =====================================================================================

namespace {
// "GET /aaa... HTTP/1.1" of exactly n characters (n >= 14).
std::string request_line_of(std::size_t n) { return "GET /" + std::string(n - 14, 'a') + " HTTP/1.1"; }
// "X: vvv..." of exactly n characters (n >= 3).
std::string header_line_of(std::size_t n) { return "X: " + std::string(n - 3, 'v'); }

ws::HttpLimits line_limit(std::size_t n) {
  ws::HttpLimits l;
  l.max_line = n;
  return l;
}
}  // namespace

TEST_CASE("http limits: request line exactly max_line passes, one more is 414") {
  const ws::HttpLimits lim = line_limit(30);
  CHECK(request_line_of(30).size() == 30);
  ws::RequestParser ok = parse_request(head(request_line_of(30), {"Host: h"}), lim);
  CHECK(ok.complete());
  CHECK_FALSE(ok.failed());
  ws::RequestParser bad = parse_request(head(request_line_of(31), {"Host: h"}), lim);
  CHECK_FALSE(bad.complete());
  CHECK(bad.failed());
  CHECK(bad.error().code == ws::Errc::http_line_too_long);
  CHECK(bad.error_status() == 414);
  ws::RequestParser bad1 = parse_bytewise<ws::RequestParser>(head(request_line_of(31), {}), lim);
  CHECK(bad1.error().code == ws::Errc::http_line_too_long);
  CHECK(bad1.error_status() == 414);
  CHECK(parse_bytewise<ws::RequestParser>(head(request_line_of(30), {}), lim).complete());
}

TEST_CASE("http limits: header line exactly max_line passes, one more is 431") {
  const ws::HttpLimits lim = line_limit(30);
  CHECK(header_line_of(30).size() == 30);
  ws::RequestParser ok = parse_request(head("GET / HTTP/1.1", {"Host: h", header_line_of(30)}), lim);
  CHECK(ok.complete());
  CHECK(ok.message().get("X").size() == 27);
  ws::RequestParser bad =
      parse_request(head("GET / HTTP/1.1", {"Host: h", header_line_of(31)}), lim);
  CHECK(bad.failed());
  CHECK(bad.error().code == ws::Errc::http_line_too_long);
  CHECK(bad.error_status() == 431);
  ws::RequestParser bad1 =
      parse_bytewise<ws::RequestParser>(head("GET / HTTP/1.1", {header_line_of(31)}), lim);
  CHECK(bad1.error().code == ws::Errc::http_line_too_long);
  CHECK(bad1.error_status() == 431);
}

TEST_CASE("http limits: max_line boundary is the same with bare LF line endings") {
  // The limit counts a line's content; the line ending must not change what fits.
  const ws::HttpLimits lim = line_limit(30);
  CHECK(parse_request(head(request_line_of(30), {"Host: h"}, "\n"), lim).complete());
  CHECK(parse_request(head("GET / HTTP/1.1", {header_line_of(30)}, "\n"), lim).complete());

  ws::RequestParser start = parse_request(head(request_line_of(31), {"Host: h"}, "\n"), lim);
  CHECK(start.failed());
  CHECK(start.error().code == ws::Errc::http_line_too_long);
  CHECK(start.error_status() == 414);

  ws::RequestParser field = parse_request(head("GET / HTTP/1.1", {header_line_of(31)}, "\n"), lim);
  CHECK(field.failed());
  CHECK(field.error().code == ws::Errc::http_line_too_long);
  CHECK(field.error_status() == 431);
}

TEST_CASE("http limits: an overlong line fails before its end arrives") {
  ws::RequestParser p(line_limit(30));
  const std::string junk = "GET /" + std::string(1000, 'a');  // no line end yet
  const std::size_t used = p.feed(junk.data(), junk.size());
  CHECK(p.failed());
  CHECK(used <= 31);
  CHECK(p.error().code == ws::Errc::http_line_too_long);
  // After a failure nothing more is consumed.
  CHECK(p.feed("\r\n", 2) == 0);
  CHECK_FALSE(p.complete());
}

TEST_CASE("http limits: max_headers exactly passes, one more is 431 http_too_many_headers") {
  ws::HttpLimits lim;
  lim.max_headers = 3;
  ws::RequestParser ok = parse_request(head("GET / HTTP/1.1", {"A: 1", "B: 2", "C: 3"}), lim);
  CHECK(ok.complete());
  CHECK(ok.message().fields.size() == 3);
  ws::RequestParser bad =
      parse_request(head("GET / HTTP/1.1", {"A: 1", "B: 2", "C: 3", "D: 4"}), lim);
  CHECK(bad.failed());
  CHECK(bad.error().code == ws::Errc::http_too_many_headers);
  CHECK(bad.error_status() == 431);
  // Repeated names still count as lines, even though they are combined.
  ws::RequestParser rep = parse_request(head("GET / HTTP/1.1", {"A: 1", "A: 2", "A: 3", "A: 4"}), lim);
  CHECK(rep.failed());
  CHECK(rep.error().code == ws::Errc::http_too_many_headers);
}

TEST_CASE("http limits: head exactly max_head passes, one more is 431 http_head_too_large") {
  ws::HttpLimits lim;
  lim.max_head = 64;
  // 16 (request line) + 8 + v (Host line) + 2 (empty line)
  const std::string exact = head("GET / HTTP/1.1", {"Host: " + std::string(38, 'h')});
  CHECK(exact.size() == 64);
  ws::RequestParser ok(lim);
  CHECK(ok.feed(exact.data(), exact.size()) == 64);
  CHECK(ok.complete());
  CHECK(parse_bytewise<ws::RequestParser>(exact, lim).complete());
  // Bytes after the head do not count.
  const std::string with_trailer = exact + std::string(100, 'z');
  ws::RequestParser t(lim);
  CHECK(t.feed(with_trailer.data(), with_trailer.size()) == 64);
  CHECK(t.complete());

  const std::string over = head("GET / HTTP/1.1", {"Host: " + std::string(39, 'h')});
  CHECK(over.size() == 65);
  ws::RequestParser bad = parse_request(over, lim);
  CHECK(bad.failed());
  CHECK(bad.error().code == ws::Errc::http_head_too_large);
  CHECK(bad.error_status() == 431);
  ws::RequestParser bad1 = parse_bytewise<ws::RequestParser>(over, lim);
  CHECK(bad1.error().code == ws::Errc::http_head_too_large);
  // Leading empty lines are part of the head.
  ws::RequestParser lead = parse_request("\r\n" + exact, lim);
  CHECK(lead.error().code == ws::Errc::http_head_too_large);
}

TEST_CASE("http limits: each limit has its own error code") {
  CHECK(ws::Errc::http_line_too_long != ws::Errc::http_head_too_large);
  CHECK(ws::Errc::http_line_too_long != ws::Errc::http_too_many_headers);
  CHECK(ws::Errc::http_head_too_large != ws::Errc::http_too_many_headers);
  CHECK(ws::Errc::http_malformed != ws::Errc::http_line_too_long);
  CHECK(ws::Errc::http_malformed != ws::Errc::http_version);
  // Default limits come from the macros.
  ws::HttpLimits d;
  CHECK(d.max_line == WEBSOCKET_MAX_HTTP_LINE);
  CHECK(d.max_headers == WEBSOCKET_MAX_HTTP_HEADERS);
  CHECK(d.max_head == WEBSOCKET_MAX_HTTP_HEAD);
  // A default parser accepts a header line of 8000 bytes.
  CHECK(parse_request(head("GET / HTTP/1.1", {header_line_of(8000)})).complete());
}

// =====================================================================================
// Request parser: malformed input
// =====================================================================================

namespace {
void check_malformed_header(const std::string& line) {
  const std::string data = head("GET / HTTP/1.1", {"Host: h", line, "Upgrade: websocket"});
  ws::RequestParser p = parse_request(data);
  CAPTURE(line);
  CHECK(p.failed());
  CHECK_FALSE(p.complete());
  CHECK(p.error().code == ws::Errc::http_malformed);
  CHECK(p.error_status() == 400);
  ws::RequestParser b = parse_bytewise<ws::RequestParser>(data);
  CHECK(b.error().code == ws::Errc::http_malformed);
}

void check_bad_start(const std::string& line, ws::Errc code, int status) {
  const std::string data = head(line, {"Host: h"});
  ws::RequestParser p = parse_request(data);
  CAPTURE(line);
  CHECK(p.failed());
  CHECK_FALSE(p.complete());
  CHECK(p.error().code == code);
  CHECK(p.error_status() == status);
}
}  // namespace

TEST_CASE("http malformed: header without a colon") {
  check_malformed_header("Host example.com");
  check_malformed_header("X-Nothing");
}

TEST_CASE("http malformed: whitespace before the colon") {
  check_malformed_header("Host : example.com");
  check_malformed_header("Host\t: example.com");
}

TEST_CASE("http malformed: obs-fold continuation lines are rejected") {
  check_malformed_header(" folded");
  check_malformed_header("\tfolded");
  check_malformed_header(" X: y");
  // A fold right after the start line, too.
  ws::RequestParser p = parse_request("GET / HTTP/1.1\r\n  Host: h\r\n\r\n");
  CHECK(p.error().code == ws::Errc::http_malformed);
}

TEST_CASE("http malformed: bad header names") {
  check_malformed_header(": no-name");
  check_malformed_header("X(y): 1");
  check_malformed_header("X\"y: 1");
  check_malformed_header("\xC3\xA9: 1");
  check_malformed_header(std::string("X\0Y: 1", 6));
}

TEST_CASE("http malformed: control characters, NUL and bare CR in a value") {
  check_malformed_header("X: a\x01" "b");
  check_malformed_header(std::string("X: a\0b", 6));
  check_malformed_header(std::string("X: \0", 4));
  check_malformed_header("X: a\rb");
  check_malformed_header("X: a\r");  // bare CR right before the CRLF
  check_malformed_header("X: a\x7F");
  check_malformed_header("X: a\x1B[0m");
  // HTAB, SP and obs-text are fine.
  ws::RequestParser ok = parse_request(head("GET / HTTP/1.1", {"X: a\tb c\xC3\xA9"}));
  CHECK(ok.complete());
  CHECK(ok.message().get("X") == "a\tb c\xC3\xA9");
}

TEST_CASE("http malformed: bad request lines are 400 http_malformed") {
  for (const char* line : {"G(T / HTTP/1.1", "GE\x01T / HTTP/1.1", "G\"T / HTTP/1.1",
                           " GET / HTTP/1.1", "GET  / HTTP/1.1", "GET / HTTP/1.1 ",
                           "GET /", "GET / ", "GET", "/ HTTP/1.1",
                           "GET / HTTP/1.1x", "GET / HTTP/1.", "GET / HTTP/1", "GET / http/1.1",
                           "GET / HTTP/1.A", "GET / HTTPS/1.1", "GET /\x01 HTTP/1.1",
                           "GET /\x7F HTTP/1.1", "GET / x HTTP/1.1", "GET / HTTP/11.1"}) {
    check_bad_start(line, ws::Errc::http_malformed, 400);
  }
  check_bad_start(std::string("GET /\0 HTTP/1.1", 15), ws::Errc::http_malformed, 400);
  check_bad_start("GET / HTTP/1.1\r", ws::Errc::http_malformed, 400);  // bare CR
}

TEST_CASE("http malformed: another HTTP major version is 505 http_version") {
  check_bad_start("GET / HTTP/2.0", ws::Errc::http_version, 505);
  check_bad_start("GET / HTTP/0.9", ws::Errc::http_version, 505);
  check_bad_start("GET / HTTP/3.1", ws::Errc::http_version, 505);
  // HTTP/1.0 parses (the handshake rejects it later).
  ws::RequestParser p = parse_request(head("GET / HTTP/1.0", {"Host: h"}));
  CHECK(p.complete());
  CHECK(p.message().minor_version == 0);
}

// =====================================================================================
// Response parser
// =====================================================================================

TEST_CASE("http response: status line with reason") {
  const std::string data =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const std::string all = data + "\x81\x02hi";
  ws::ResponseParser p;
  CHECK(p.feed(all.data(), all.size()) == data.size());
  ENSURE(p.complete());
  CHECK(p.message().status == 101);
  CHECK(p.message().reason == "Switching Protocols");
  CHECK(p.message().minor_version == 1);
  CHECK(p.message().get("upgrade") == "websocket");
  // Same with one byte at a time.
  ws::ResponseParser b = parse_bytewise<ws::ResponseParser>(all);
  CHECK(b.complete());
  CHECK(b.message().status == 101);
  CHECK(b.message().reason == "Switching Protocols");
}

TEST_CASE("http response: empty reason, with or without the space") {
  ws::ResponseParser a = parse_response("HTTP/1.1 101 \r\n\r\n");
  CHECK(a.complete());
  CHECK(a.message().status == 101);
  CHECK(a.message().reason == "");
  ws::ResponseParser b = parse_response("HTTP/1.1 101\r\n\r\n");
  CHECK(b.complete());
  CHECK(b.message().status == 101);
  CHECK(b.message().reason == "");
  ws::ResponseParser c = parse_response("HTTP/1.0 404 Not  Found \r\n\r\n");
  CHECK(c.complete());
  CHECK(c.message().status == 404);
  CHECK(c.message().minor_version == 0);
  CHECK(c.message().reason == "Not  Found ");
}

TEST_CASE("http response: bad status lines") {
  for (const char* line :
       {"HTTP/1.1 1O1 Switching", "HTTP/1.1 10 X", "HTTP/1.1 1011 X", "HTTP/1.1  101 X",
        "HTTP/1.1 101X", "HTTP/1.1", "HTTP/1.1 ", "HTTP/1.1 10", "HTTP/1.1 -01 X",
        "HTTP/1.1 101 Bad\x01", "HTTP/1.1x101 X", "http/1.1 101 X", "ICY 200 OK",
        "HTTP/1.1\t101 X"}) {
    ws::ResponseParser p = parse_response(std::string(line) + "\r\n\r\n");
    CAPTURE(line);
    CHECK(p.failed());
    CHECK(p.error().code == ws::Errc::http_malformed);
  }
  ws::ResponseParser v = parse_response("HTTP/2.0 101 X\r\n\r\n");
  CHECK(v.failed());
  CHECK(v.error().code == ws::Errc::http_version);
}

// =====================================================================================
// Headers
// =====================================================================================

TEST_CASE("headers: find/get/has are case-insensitive") {
  ws::HttpHeaders h;
  h.add("Sec-WebSocket-Key", "k");
  h.add("Host", "example.com");
  CHECK(h.has("sec-websocket-key"));
  CHECK(h.has("SEC-WEBSOCKET-KEY"));
  CHECK(h.get("HOST") == "example.com");
  ENSURE(h.find("host") != nullptr);
  CHECK(*h.find("host") == "example.com");
  CHECK_FALSE(h.has("Hos"));
  CHECK_FALSE(h.has("Hostx"));
  CHECK(h.find("Origin") == nullptr);
  CHECK(h.get("Origin").empty());
  // Parsed names keep their spelling and are found case-insensitively.
  ws::RequestParser p = parse_request(head("GET / HTTP/1.1", {"hOsT: x"}));
  CHECK(p.message().fields[0].name == "hOsT");
  CHECK(p.message().get("Host") == "x");
}

TEST_CASE("headers: repeated fields are combined with \", \" and Cookie with \"; \"") {
  ws::RequestParser p = parse_request(head(
      "GET / HTTP/1.1", {"X-A: 1", "Cookie: a=1", "x-a: 2", "Other: z", "cookie: b=2", "X-A:3"}));
  ENSURE(p.complete());
  const ws::HttpRequest& r = p.message();
  CHECK(r.fields.size() == 3);
  CHECK(r.get("X-A") == "1, 2, 3");
  CHECK(r.get("Cookie") == "a=1; b=2");
  CHECK(r.get("Other") == "z");
  // combine() directly.
  ws::HttpHeaders h;
  h.combine("Accept", "a");
  h.combine("ACCEPT", "b");
  h.combine("COOKIE", "c=1");
  h.combine("Cookie", "d=2");
  CHECK(h.fields.size() == 2);
  CHECK(h.get("accept") == "a, b");
  CHECK(h.get("cookie") == "c=1; d=2");
  // add() keeps repeats separate.
  ws::HttpHeaders s;
  s.add("Set-Cookie", "a=1");
  s.add("Set-Cookie", "b=2");
  CHECK(s.fields.size() == 2);
}

TEST_CASE("headers: has_token over comma-separated lists") {
  auto parsed = [](const std::string& line) {
    return parse_request(head("GET / HTTP/1.1", {line})).message();
  };
  CHECK(parsed("Connection: keep-alive, Upgrade").has_token("Connection", "upgrade"));
  CHECK(parsed("Connection: keep-alive, Upgrade").has_token("connection", "KEEP-ALIVE"));
  CHECK(parsed("connection: UPGRADE").has_token("Connection", "Upgrade"));
  CHECK(parsed("Connection: ,\t, upgrade\t ,, ").has_token("Connection", "upgrade"));
  CHECK(parsed("Connection:upgrade,close").has_token("Connection", "close"));
  CHECK_FALSE(parsed("Connection: keep-alive").has_token("Connection", "upgrade"));
  CHECK_FALSE(parsed("Connection: upgraded").has_token("Connection", "upgrade"));
  CHECK_FALSE(parsed("Connection: keep-alive upgrade").has_token("Connection", "upgrade"));
  CHECK_FALSE(parsed("Connection: upgrade;q=1").has_token("Connection", "upgrade"));
  CHECK_FALSE(parsed("Connection: ,,").has_token("Connection", ""));
  CHECK_FALSE(parsed("Connection: upgrade").has_token("Upgrade", "upgrade"));
  // Combined repeats are one list.
  ws::RequestParser p = parse_request(head("GET / HTTP/1.1", {"Connection: keep-alive",
                                                              "Connection: Upgrade"}));
  CHECK(p.message().has_token("Connection", "upgrade"));
}

TEST_CASE("headers: values are trimmed of spaces and tabs") {
  ws::RequestParser p =
      parse_request(head("GET / HTTP/1.1", {"A: \t x y \t ", "B:z", "C:", "D:   ", "E:\t\t"}));
  ENSURE(p.complete());
  CHECK(p.message().get("A") == "x y");
  CHECK(p.message().get("B") == "z");
  CHECK(p.message().has("C"));
  CHECK(p.message().get("C") == "");
  CHECK(p.message().get("D") == "");
  CHECK(p.message().get("E") == "");
}

// =====================================================================================
// HttpRequest::path / query
// =====================================================================================

TEST_CASE("request target: path() and query()") {
  ws::HttpRequest r;
  r.target = "/chat?room=1";
  CHECK(r.path() == "/chat");
  CHECK(r.query() == "room=1");
  r.target = "/";
  CHECK(r.path() == "/");
  CHECK(r.query() == "");
  r.target = "/a?b?c";
  CHECK(r.path() == "/a");
  CHECK(r.query() == "b?c");
  r.target = "/a?";
  CHECK(r.path() == "/a");
  CHECK(r.query() == "");
  r.target = "/?x";
  CHECK(r.path() == "/");
  CHECK(r.query() == "x");
  r.target = "/p/q/r";
  CHECK(r.path() == "/p/q/r");
  r.target = "/r?u=http://x/y";  // "://" in the query of an origin-form target
  CHECK(r.path() == "/r");
  CHECK(r.query() == "u=http://x/y");
}

TEST_CASE("request target: absolute-form is reduced to its path") {
  ws::HttpRequest r;
  r.target = "http://h:1/x?y";
  CHECK(r.path() == "/x");
  CHECK(r.query() == "y");
  r.target = "ws://example.com";
  CHECK(r.path() == "/");
  CHECK(r.query() == "");
  r.target = "http://h/a/b";
  CHECK(r.path() == "/a/b");
}

TEST_CASE("request target: absolute-form with a query but no path") {
  // RFC 3986 §3.2: the authority ends at the first '/', '?' or '#'.
  ws::HttpRequest r;
  r.target = "http://h?x";
  CHECK(r.path() == "/");
  CHECK(r.query() == "x");
  r.target = "http://h:8080?next=/a/b";
  CHECK(r.path() == "/");
  CHECK(r.query() == "next=/a/b");
}

// =====================================================================================
// Serializers
// =====================================================================================

TEST_CASE("serialize: request exact bytes") {
  ws::HttpRequest r;
  r.method = "GET";
  r.target = "/chat?x=1";
  r.add("Host", "example.com");
  r.add("Upgrade", "websocket");
  CHECK(ws::serialize(r) == "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n");
  r.minor_version = 0;
  r.fields.clear();
  CHECK(ws::serialize(r) == "GET /chat?x=1 HTTP/1.0\r\n\r\n");
}

TEST_CASE("serialize: 101 response has no Content-Length and no body") {
  ws::HttpResponse r;
  r.status = 101;
  r.add("Upgrade", "websocket");
  r.add("Connection", "Upgrade");
  CHECK(ws::serialize(r) ==
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  r.body = "ignored";
  CHECK_FALSE(contains(ws::serialize(r), "ignored"));
  CHECK_FALSE(contains(ws::serialize(r), "Content-Length"));
}

TEST_CASE("serialize: error responses get Content-Length for their body") {
  ws::HttpResponse r;
  r.status = 400;
  r.add("Content-Type", "text/plain");
  r.body = "bad\n";
  CHECK(ws::serialize(r) ==
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbad\n");
  ws::HttpResponse empty;
  empty.status = 404;
  CHECK(ws::serialize(empty) == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  // A Content-Length the caller set is not repeated.
  ws::HttpResponse own;
  own.status = 200;
  own.add("content-length", "2");
  own.body = "ok";
  CHECK(ws::serialize(own) == "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
}

TEST_CASE("serialize: reasons, 204 and 304") {
  ws::HttpResponse r;
  r.status = 426;
  r.reason = "Please Upgrade";
  CHECK(ws::serialize(r) == "HTTP/1.1 426 Please Upgrade\r\nContent-Length: 0\r\n\r\n");
  r.reason.clear();
  r.status = 204;
  r.body = "x";
  CHECK(ws::serialize(r) == "HTTP/1.1 204 Unknown\r\n\r\n");
  r.status = 304;
  CHECK(ws::serialize(r) == "HTTP/1.1 304 Unknown\r\n\r\n");
  CHECK(std::string(ws::http_reason(405)) == "Method Not Allowed");
  CHECK(std::string(ws::http_reason(505)) == "HTTP Version Not Supported");
  CHECK(std::string(ws::http_reason(431)) == "Request Header Fields Too Large");
}

TEST_CASE("serialize: a serialized response parses back") {
  ws::HttpResponse r;
  r.status = 426;
  r.add("Sec-WebSocket-Version", "13");
  r.body = "body\n";
  const std::string bytes = ws::serialize(r);
  ws::ResponseParser p;
  const std::size_t used = p.feed(bytes.data(), bytes.size());
  ENSURE(p.complete());
  CHECK(bytes.substr(used) == "body\n");
  CHECK(p.message().status == 426);
  CHECK(p.message().reason == "Upgrade Required");
  CHECK(p.message().get("Sec-WebSocket-Version") == "13");
  CHECK(p.message().get("Content-Length") == "5");
}

// =====================================================================================
// answer_handshake (server)
// =====================================================================================

TEST_CASE("handshake server: the RFC 6455 §1.3 sample gets 101") {
  ws::HttpResponse r = answer(sample_head());
  CHECK(r.status == 101);
  CHECK(r.get("Upgrade") == "websocket");
  CHECK(r.has_token("Connection", "upgrade"));
  CHECK(r.get("Sec-WebSocket-Accept") == kSampleAccept);
  CHECK_FALSE(r.has("Sec-WebSocket-Protocol"));  // the server supports none
  CHECK_FALSE(r.has("Sec-WebSocket-Extensions"));
  CHECK(r.body.empty());
  const std::string bytes = ws::serialize(r);
  CHECK(bytes.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK(contains(bytes, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  CHECK_FALSE(contains(bytes, "Content-Length"));
  CHECK(bytes.size() >= 4);
  CHECK(bytes.substr(bytes.size() - 4) == "\r\n\r\n");
}

namespace {
// A distinctive string planted in the target and in headers of failing requests.
const char* const kMarker = "Zq7MarkerXv";

// Checks a failed handshake answer: its status, that its body is a complete message and that
// nothing of the request comes back in it.
void check_rejected(const ws::HttpResponse& r, int status) {
  CHECK(r.status == status);
  CHECK_FALSE(r.has("Sec-WebSocket-Accept"));
  CHECK_FALSE(r.body.empty());
  const std::string bytes = ws::serialize(r);
  CHECK_FALSE(contains(bytes, kMarker));
  CHECK(contains(bytes, "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n"));
  CHECK(bytes.substr(bytes.size() - r.body.size()) == r.body);
}

std::string marked(const std::string& start, std::vector<std::string> lines) {
  lines.push_back(std::string("X-Marker: ") + kMarker);
  lines.push_back(std::string("Origin: http://") + kMarker + ".example");
  return head(start, lines);
}
}  // namespace

TEST_CASE("handshake server: POST gets 405 with Allow: GET") {
  ws::HttpResponse r = answer(marked("POST /chat?Zq7MarkerXv HTTP/1.1", kSampleHeaders));
  check_rejected(r, 405);
  CHECK(r.get("Allow") == "GET");
  ws::HttpResponse lower = answer(marked("get /chat HTTP/1.1", kSampleHeaders));
  check_rejected(lower, 405);  // methods are case-sensitive
}

TEST_CASE("handshake server: HTTP/1.0 gets 400") {
  check_rejected(answer(marked("GET /Zq7MarkerXv HTTP/1.0", kSampleHeaders)), 400);
}

TEST_CASE("handshake server: missing Host gets 400") {
  check_rejected(answer(marked("GET /chat HTTP/1.1", sample_without("Host"))), 400);
}

TEST_CASE("handshake server: more than one Host gets 400 (RFC 7230 §5.4)") {
  // The parser combines the repeats into "a.example, b.example"; that is not one Host.
  check_rejected(answer(marked("GET /chat HTTP/1.1",
                               sample_without("Host", {"Host: a.example", "Host: b.example"}))),
                 400);
  check_rejected(answer(marked("GET /chat HTTP/1.1",
                               sample_without("Host", {"Host: a.example", "host: a.example"}))),
                 400);
}

TEST_CASE("handshake server: missing or other Upgrade gets 426 with Upgrade: websocket") {
  for (const auto& lines : {sample_without("Upgrade"), sample_without("Upgrade", {"Upgrade: h2c"}),
                            sample_without("Upgrade", {"Upgrade: websockets"}),
                            sample_without("Upgrade", {std::string("Upgrade: ") + kMarker})}) {
    ws::HttpResponse r = answer(marked("GET /chat HTTP/1.1", lines));
    check_rejected(r, 426);
    CHECK(r.get("Upgrade") == "websocket");
    CHECK(r.has_token("Connection", "upgrade"));  // RFC 7230 §6.7: Upgrade is hop-by-hop
  }
}

TEST_CASE("handshake server: Connection without upgrade gets 400") {
  check_rejected(answer(marked("GET /chat HTTP/1.1",
                               sample_without("Connection", {"Connection: keep-alive"}))),
                 400);
  check_rejected(answer(marked("GET /chat HTTP/1.1", sample_without("Connection"))), 400);
  check_rejected(answer(marked("GET /chat HTTP/1.1",
                               sample_without("Connection", {"Connection: upgraded"}))),
                 400);
}

TEST_CASE("handshake server: missing or wrong Sec-WebSocket-Version gets 426 with version 13") {
  const std::vector<std::vector<std::string>> cases = {
      sample_without("Sec-WebSocket-Version"),
      sample_without("Sec-WebSocket-Version", {"Sec-WebSocket-Version: 8"}),
      sample_without("Sec-WebSocket-Version", {"Sec-WebSocket-Version: 13, 8"}),
      sample_without("Sec-WebSocket-Version", {"Sec-WebSocket-Version: 130"}),
      sample_without("Sec-WebSocket-Version", {"Sec-WebSocket-Version:"}),
      sample_without("Sec-WebSocket-Version",
                     {"Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"}),
  };
  for (const auto& lines : cases) {
    ws::HttpResponse r = answer(marked("GET /chat HTTP/1.1", lines));
    check_rejected(r, 426);
    CHECK(r.get("Sec-WebSocket-Version") == "13");
  }
}

// valid_client_key() checks the key's form without decoding it: it must agree with "decodes to
// exactly 16 bytes" on every string, here 24-character strings near the valid form.
TEST_CASE("handshake server: the key check agrees with base64_decode() giving 16 bytes") {
  std::mt19937 rng(24);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=- .";
  std::size_t valid = 0, mismatches = 0;
  std::string first_bad;
  for (int iter = 0; iter < 200000; ++iter) {
    unsigned char nonce[16];
    for (unsigned char& b : nonce) b = static_cast<unsigned char>(rng());
    std::string k = ws::base64_encode(nonce, 16);
    const int changes = static_cast<int>(rng() % 3);  // 0: as encoded; else 1-2 characters changed
    for (int c = 0; c < changes; ++c) k[rng() % k.size()] = alphabet[rng() % alphabet.size()];
    if (rng() % 16 == 0) k.resize(rng() % 30, 'A');
    std::string raw;
    const bool expected = ws::base64_decode(k, raw) && raw.size() == 16;
    valid += expected;
    if (ws::detail::valid_client_key(k) != expected && mismatches++ == 0) first_bad = k;
  }
  CAPTURE(first_bad);
  CHECK(mismatches == 0);
  CHECK(valid > 60000);
  CHECK(valid < 190000);
}

TEST_CASE("handshake server: bad Sec-WebSocket-Key gets 400") {
  const std::string key15 = ws::base64_encode("0123456789abcde", 15);
  const std::string key17 = ws::base64_encode("0123456789abcdefg", 17);
  CHECK(key15.size() == 20);
  CHECK(key17.size() == 24);
  const std::vector<std::string> bad_keys = {
      key15,
      key17,
      "!!!!!!!!!!!!!!!!!!!!!!==",
      "dGhlIHNhbXBsZSBub25jZR==",  // non-zero pad bits
      "dGhlIHNhbXBsZSBub25jZQ",    // no padding
      "dGhlIHNhbXBsZSBub25jZQ==dGhl",
      "dGhlIHNhbXB sZSBub25jZQ=",
  };
  for (const std::string& k : bad_keys) {
    CAPTURE(k);
    check_rejected(answer(marked("GET /chat HTTP/1.1",
                                 sample_without("Sec-WebSocket-Key", {"Sec-WebSocket-Key: " + k}))),
                   400);
  }
  check_rejected(answer(marked("GET /chat HTTP/1.1", sample_without("Sec-WebSocket-Key"))), 400);
  // Two keys, each valid alone, are combined into one bad value.
  check_rejected(answer(marked("GET /chat HTTP/1.1",
                               sample_without("Sec-WebSocket-Key",
                                              {"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                               "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="}))),
                 400);
}

TEST_CASE("handshake server: header names and the Upgrade value are case-insensitive") {
  ws::HttpResponse r = answer(head("GET /chat HTTP/1.1",
                                   {"host: h", "UPGRADE: WebSocket", "connection: UPGRADE",
                                    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                                    "SEC-WEBSOCKET-VERSION: 13"}));
  CHECK(r.status == 101);
  CHECK(r.get("Sec-WebSocket-Accept") == kSampleAccept);
}

TEST_CASE("handshake server: Connection: keep-alive, Upgrade is accepted") {
  ws::HttpResponse r = answer(head(
      "GET /chat HTTP/1.1", sample_without("Connection", {"Connection: keep-alive, Upgrade"})));
  CHECK(r.status == 101);
  ws::HttpResponse split = answer(head(
      "GET /chat HTTP/1.1",
      sample_without("Connection", {"Connection: keep-alive", "Connection: Upgrade"})));
  CHECK(split.status == 101);
  ws::HttpResponse multi = answer(head(
      "GET /chat HTTP/1.1", sample_without("Upgrade", {"Upgrade: h2c, websocket"})));
  CHECK(multi.status == 101);
}

TEST_CASE("handshake server: a key with a different value gives a different accept") {
  ws::HttpResponse r = answer(head(
      "GET /chat HTTP/1.1",
      sample_without("Sec-WebSocket-Key", {"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="})));
  CHECK(r.status == 101);
  CHECK(r.get("Sec-WebSocket-Accept") == ws::accept_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK(r.get("Sec-WebSocket-Accept") != kSampleAccept);
}

// =====================================================================================
// Subprotocols
// =====================================================================================

TEST_CASE("subprotocols: select_subprotocol picks the client's first supported") {
  CHECK(ws::select_subprotocol("chat, superchat", {"superchat", "chat"}) == "chat");
  CHECK(ws::select_subprotocol("superchat, chat", {"chat", "superchat"}) == "superchat");
  CHECK(ws::select_subprotocol("a, b", {"b"}) == "b");
  CHECK(ws::select_subprotocol("a, b", {"c"}) == "");
  CHECK(ws::select_subprotocol("", {"c"}) == "");
  CHECK(ws::select_subprotocol("chat", {}) == "");
  CHECK(ws::select_subprotocol(" ,\tchat ,", {"chat"}) == "chat");
  CHECK(ws::select_subprotocol("chatter", {"chat"}) == "");
  CHECK(ws::select_subprotocol("Chat", {"chat"}) == "");  // subprotocol names are exact
}

TEST_CASE("subprotocols: answer_handshake names the chosen one") {
  ws::HttpResponse r = answer(sample_head(), {"superchat", "chat"});
  CHECK(r.status == 101);
  CHECK(r.get("Sec-WebSocket-Protocol") == "chat");
  ws::HttpResponse s = answer(sample_head(), {"superchat"});
  CHECK(s.get("Sec-WebSocket-Protocol") == "superchat");
}

TEST_CASE("subprotocols: none supported, no Sec-WebSocket-Protocol in the answer") {
  ws::HttpResponse r = answer(sample_head(), {"mqtt", "graphql-ws"});
  CHECK(r.status == 101);
  CHECK_FALSE(r.has("Sec-WebSocket-Protocol"));
  ws::HttpResponse none = answer(head(kSampleStart, sample_without("Sec-WebSocket-Protocol")),
                                 {"chat"});
  CHECK(none.status == 101);
  CHECK_FALSE(none.has("Sec-WebSocket-Protocol"));
}

TEST_CASE("subprotocols: repeated Sec-WebSocket-Protocol headers combine") {
  ws::HttpResponse r = answer(head(kSampleStart, sample_without("Sec-WebSocket-Protocol",
                                                                {"Sec-WebSocket-Protocol: v1",
                                                                 "sec-websocket-protocol: v2"})),
                              {"v2"});
  CHECK(r.status == 101);
  CHECK(r.get("Sec-WebSocket-Protocol") == "v2");
}

// =====================================================================================
// Sec-WebSocket-Extensions
// =====================================================================================

TEST_CASE("extensions: names and parameters") {
  std::vector<ws::Extension> ext;
  CHECK(ws::parse_extensions(
      "permessage-deflate; client_max_window_bits, x-foo; a=1; b=\"q,;x\"", ext));
  ENSURE(ext.size() == 2);
  CHECK(ext[0].name == "permessage-deflate");
  ENSURE(ext[0].params.size() == 1);
  CHECK(ext[0].params[0].first == "client_max_window_bits");
  CHECK(ext[0].params[0].second == "");
  CHECK(ext[1].name == "x-foo");
  ENSURE(ext[1].params.size() == 2);
  CHECK(ext[1].params[0].first == "a");
  CHECK(ext[1].params[0].second == "1");
  CHECK(ext[1].params[1].first == "b");
  CHECK(ext[1].params[1].second == "q,;x");
}

TEST_CASE("extensions: whitespace, empty elements, escapes, repeats") {
  std::vector<ws::Extension> ext;
  CHECK(ws::parse_extensions(" , a ;\tp = 15 ;q=\"x\\\"y\" ,, b,a ,", ext));
  ENSURE(ext.size() == 3);
  CHECK(ext[0].name == "a");
  ENSURE(ext[0].params.size() == 2);
  CHECK(ext[0].params[0].first == "p");
  CHECK(ext[0].params[0].second == "15");
  CHECK(ext[0].params[1].second == "x\"y");
  CHECK(ext[1].name == "b");
  CHECK(ext[1].params.empty());
  CHECK(ext[2].name == "a");
}

TEST_CASE("extensions: empty string and empty list give no extensions") {
  std::vector<ws::Extension> ext(3);
  CHECK(ws::parse_extensions("", ext));
  CHECK(ext.empty());
  ext.resize(2);
  CHECK(ws::parse_extensions(" , ,\t", ext));
  CHECK(ext.empty());
}

TEST_CASE("extensions: bad syntax is rejected") {
  for (const char* s : {"foo;", "foo; ", "foo;;a", "foo; =1", "foo bar", "foo; a=", "foo; a= ",
                        "foo; a=\"x", "foo; a=\"\"", "foo; a=\"x\\", ";a", "=a", "foo=1",
                        "foo; a=1=2", "foo; a b", "foo; a=\"x\"y", "fo\x01o", "foo; a=(1)",
                        "f\"oo\"", "foo,\"bar\"", "foo; a=1;"}) {
    std::vector<ws::Extension> ext;
    CAPTURE(s);
    CHECK_FALSE(ws::parse_extensions(s, ext));
  }
}

// =====================================================================================
// parse_url
// =====================================================================================

TEST_CASE("url: ws://host defaults") {
  ws::Url u;
  u.port = 1;
  CHECK_FALSE(ws::parse_url("ws://example.com", u));
  CHECK_FALSE(u.secure);
  CHECK(u.host == "example.com");
  CHECK(u.port == 80);
  CHECK(u.resource == "/");
  CHECK_FALSE(u.ipv6_literal);
  CHECK(u.host_header() == "example.com");
}

TEST_CASE("url: wss://host defaults to 443") {
  ws::Url u;
  CHECK_FALSE(ws::parse_url("wss://example.com/", u));
  CHECK(u.secure);
  CHECK(u.port == 443);
  CHECK(u.resource == "/");
  CHECK(u.host_header() == "example.com");
  CHECK_FALSE(ws::parse_url("WSS://Example.com", u));
  CHECK(u.secure);
  CHECK(u.host == "Example.com");
}

TEST_CASE("url: port, path and query") {
  ws::Url u;
  CHECK_FALSE(ws::parse_url("ws://host:9001/p?q=1", u));
  CHECK(u.host == "host");
  CHECK(u.port == 9001);
  CHECK(u.resource == "/p?q=1");
  CHECK(u.host_header() == "host:9001");
  CHECK_FALSE(ws::parse_url("ws://h?x", u));
  CHECK(u.host == "h");
  CHECK(u.resource == "/?x");
  CHECK_FALSE(ws::parse_url("ws://h:65535/a/b/", u));
  CHECK(u.port == 65535);
  CHECK(u.resource == "/a/b/");
  CHECK_FALSE(ws::parse_url("ws://h:1", u));
  CHECK(u.port == 1);
}

TEST_CASE("url: IPv6 literal") {
  ws::Url u;
  CHECK_FALSE(ws::parse_url("ws://[::1]:9001/p?q=1", u));
  CHECK(u.host == "::1");
  CHECK(u.ipv6_literal);
  CHECK(u.port == 9001);
  CHECK(u.resource == "/p?q=1");
  CHECK(u.host_header() == "[::1]:9001");
  CHECK_FALSE(ws::parse_url("wss://[2001:db8::a]", u));
  CHECK(u.host == "2001:db8::a");
  CHECK(u.host_header() == "[2001:db8::a]");
}

TEST_CASE("url: host_header omits only the default port") {
  ws::Url u;
  CHECK_FALSE(ws::parse_url("ws://h:80", u));
  CHECK(u.host_header() == "h");
  CHECK_FALSE(ws::parse_url("ws://h:443", u));
  CHECK(u.host_header() == "h:443");
  CHECK_FALSE(ws::parse_url("wss://h:443", u));
  CHECK(u.host_header() == "h");
  CHECK_FALSE(ws::parse_url("wss://h:80", u));
  CHECK(u.host_header() == "h:80");
  CHECK_FALSE(ws::parse_url("ws://[::1]", u));
  CHECK(u.host_header() == "[::1]");
}

TEST_CASE("url: rejects") {
  for (const char* s : {"http://h", "https://h/", "h", "ws:/h", "ws//h", "ws://", "ws:///p",
                        "ws://:80", "ws://?x", "ws://h:0", "ws://h:65536", "ws://h:99999",
                        "ws://h:123456", "ws://h:8a", "ws://h:", "ws://h:-1", "ws://h: 80",
                        "ws://h/#x", "ws://h#x", "ws://h/p?q#x", "ws://u@h", "ws://u:p@h/",
                        "ws://[::1", "ws://[::1]x", "ws://[::1]:", "ws://[]", "ws://[g::1]",
                        "ws://h/a b", "ws://h\r\n/", "ws://h/\x01", " ws://h"}) {
    ws::Url u;
    const ws::Error e = ws::parse_url(s, u);
    CAPTURE(s);
    CHECK(e.code == ws::Errc::bad_url);
  }
}

// =====================================================================================
// Client side: make_handshake_request + check_handshake_response
// =====================================================================================

namespace {
ws::Url url_of(const char* s) {
  ws::Url u;
  CHECK_FALSE(ws::parse_url(s, u));
  return u;
}

std::string fresh_key() {
  std::uint8_t nonce[16];
  CHECK(ws::random_bytes(nonce, sizeof nonce));
  return ws::base64_encode(nonce, sizeof nonce);
}

// The server's answer to `req` after a full trip through the wire format.
ws::HttpResponse server_answer(const ws::HttpRequest& req, const std::vector<std::string>& protos) {
  const std::string request_bytes = ws::serialize(req);
  ws::RequestParser rp;
  CHECK(rp.feed(request_bytes.data(), request_bytes.size()) == request_bytes.size());
  CHECK(rp.complete());
  const std::string response_bytes = ws::serialize(ws::answer_handshake(rp.message(), protos));
  ws::ResponseParser sp;
  CHECK(sp.feed(response_bytes.data(), response_bytes.size()) == response_bytes.size());
  CHECK(sp.complete());
  return sp.message();
}
}  // namespace

TEST_CASE("handshake client: request built from a URL") {
  ws::HttpRequest req;
  req.method = "junk";
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  const ws::Error e = ws::make_handshake_request(url_of("ws://example.com:9001/chat?x=1"), key,
                                                 {"chat", "superchat"}, {}, req);
  CHECK_FALSE(e);
  CHECK(req.method == "GET");
  CHECK(req.target == "/chat?x=1");
  CHECK(req.minor_version == 1);
  CHECK(req.get("Host") == "example.com:9001");
  CHECK(req.get("Upgrade") == "websocket");
  CHECK(req.has_token("Connection", "Upgrade"));
  CHECK(req.get("Sec-WebSocket-Key") == key);
  CHECK(req.get("Sec-WebSocket-Version") == "13");
  CHECK(req.get("Sec-WebSocket-Protocol") == "chat, superchat");
  const std::string bytes = ws::serialize(req);
  CHECK(bytes.rfind("GET /chat?x=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(contains(bytes, "\r\nHost: example.com:9001\r\n"));
}

TEST_CASE("handshake client: no subprotocols, no Sec-WebSocket-Protocol; IPv6 Host") {
  ws::HttpRequest req;
  CHECK_FALSE(ws::make_handshake_request(url_of("wss://[::1]/"), fresh_key(), {}, {}, req));
  CHECK_FALSE(req.has("Sec-WebSocket-Protocol"));
  CHECK(req.get("Host") == "[::1]");
  CHECK(req.target == "/");
}

TEST_CASE("handshake client: extra headers are appended") {
  ws::HttpRequest req;
  const std::vector<ws::HttpHeader> extra = {{"Origin", "http://example.com"},
                                             {"Authorization", "Bearer abc"}};
  CHECK_FALSE(ws::make_handshake_request(url_of("ws://h/"), fresh_key(), {}, extra, req));
  ENSURE(req.fields.size() >= 2);
  const std::size_t n = req.fields.size();
  CHECK(req.fields[n - 2].name == "Origin");
  CHECK(req.fields[n - 2].value == "http://example.com");
  CHECK(req.fields[n - 1].name == "Authorization");
  CHECK(req.fields[n - 1].value == "Bearer abc");
  CHECK(req.get("Host") == "h");
}

TEST_CASE("handshake client: header injection and bad subprotocols are bad_argument") {
  ws::HttpRequest req;
  const std::string key = fresh_key();
  const ws::Url u = url_of("ws://h/");
  CHECK(ws::make_handshake_request(u, key, {}, {{"X", "a\r\nEvil: 1"}}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {}, {{"X", "a\nb"}}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {}, {{"X", std::string("a\0b", 3)}}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {}, {{"X\r\nEvil", "1"}}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {}, {{"X Y", "1"}}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {}, {{"", "1"}}, req).code == ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {"chat", "bad proto"}, {}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {"a,b"}, {}, req).code == ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {""}, {}, req).code == ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, key, {"x\r\nEvil: 1"}, {}, req).code ==
        ws::Errc::bad_argument);
  // A tab in a value is allowed.
  CHECK_FALSE(ws::make_handshake_request(u, key, {"chat"}, {{"X", "a\tb"}}, req));
}

TEST_CASE("handshake client: a key that is not base64 of 16 bytes is bad_argument") {
  // The key goes into a header line verbatim, so a CR/LF in it would inject headers.
  ws::HttpRequest req;
  const ws::Url u = url_of("ws://h/");
  CHECK(ws::make_handshake_request(u, "AAAA\r\nEvil: 1", {}, {}, req).code ==
        ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, "", {}, {}, req).code == ws::Errc::bad_argument);
  CHECK(ws::make_handshake_request(u, "not a key", {}, {}, req).code == ws::Errc::bad_argument);
  CHECK_FALSE(ws::make_handshake_request(u, "AAAAAAAAAAAAAAAAAAAAAA==", {}, {}, req));
}

TEST_CASE("handshake client: round trip through answer_handshake passes") {
  const std::string key = fresh_key();
  ws::HttpRequest req;
  CHECK_FALSE(ws::make_handshake_request(url_of("ws://example.com/chat"), key,
                                         {"chat", "superchat"}, {{"Origin", "http://x"}}, req));
  const ws::HttpResponse resp = server_answer(req, {"superchat"});
  CHECK(resp.status == 101);
  std::string chosen = "stale";
  const ws::Error e = ws::check_handshake_response(resp, key, {"chat", "superchat"}, chosen);
  CHECK_FALSE(e);
  CHECK(chosen == "superchat");
  // Without subprotocols on either side.
  ws::HttpRequest plain;
  CHECK_FALSE(ws::make_handshake_request(url_of("ws://h:1234/"), key, {}, {}, plain));
  const ws::HttpResponse plain_resp = server_answer(plain, {"chat"});
  std::string none = "stale";
  CHECK_FALSE(ws::check_handshake_response(plain_resp, key, {}, none));
  CHECK(none == "");
}

namespace {
// A good answer to `key` offering "chat" and "superchat", choosing "chat".
ws::HttpResponse good_response(const std::string& key) {
  ws::HttpResponse r;
  r.status = 101;
  r.add("Upgrade", "websocket");
  r.add("Connection", "Upgrade");
  r.add("Sec-WebSocket-Accept", ws::accept_key(key));
  r.add("Sec-WebSocket-Protocol", "chat");
  return r;
}

void check_client_fails(const ws::HttpResponse& r, const std::string& key) {
  std::string chosen = "stale";
  const ws::Error e = ws::check_handshake_response(r, key, {"chat", "superchat"}, chosen);
  CHECK(e.code == ws::Errc::handshake_failed);
  CHECK(chosen == "");
}
}  // namespace

TEST_CASE("handshake client: a good response passes, case-insensitively") {
  const std::string key = kSampleKey;
  std::string chosen;
  CHECK_FALSE(ws::check_handshake_response(good_response(key), key, {"chat", "superchat"}, chosen));
  CHECK(chosen == "chat");
  ws::HttpResponse r = good_response(key);
  set_field(r, "Upgrade", "WebSocket");
  set_field(r, "Connection", "keep-alive, UPGRADE");
  remove_field(r, "Sec-WebSocket-Protocol");
  CHECK_FALSE(ws::check_handshake_response(r, key, {"chat"}, chosen));
  CHECK(chosen == "");
  // The parsed form of the RFC 6455 §1.3 sample answer.
  ws::ResponseParser p = parse_response(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
      "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
  ENSURE(p.complete());
  CHECK_FALSE(ws::check_handshake_response(p.message(), key, {"chat", "superchat"}, chosen));
  CHECK(chosen == "chat");
}

TEST_CASE("handshake client: status other than 101 fails") {
  ws::HttpResponse r = good_response(kSampleKey);
  r.status = 200;
  check_client_fails(r, kSampleKey);
  r.status = 426;
  check_client_fails(r, kSampleKey);
}

TEST_CASE("handshake client: missing or other Upgrade fails") {
  ws::HttpResponse r = good_response(kSampleKey);
  remove_field(r, "Upgrade");
  check_client_fails(r, kSampleKey);
  set_field(r, "Upgrade", "h2c");
  check_client_fails(r, kSampleKey);
  set_field(r, "Upgrade", "websocket2");
  check_client_fails(r, kSampleKey);
}

TEST_CASE("handshake client: Connection lacking upgrade fails") {
  ws::HttpResponse r = good_response(kSampleKey);
  set_field(r, "Connection", "keep-alive");
  check_client_fails(r, kSampleKey);
  remove_field(r, "Connection");
  check_client_fails(r, kSampleKey);
}

TEST_CASE("handshake client: wrong Sec-WebSocket-Accept fails") {
  ws::HttpResponse r = good_response(kSampleKey);
  set_field(r, "Sec-WebSocket-Accept", ws::accept_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  check_client_fails(r, kSampleKey);
  remove_field(r, "Sec-WebSocket-Accept");
  check_client_fails(r, kSampleKey);
  // The accept for another key does not pass for ours.
  check_client_fails(good_response("AAAAAAAAAAAAAAAAAAAAAA=="), kSampleKey);
}

TEST_CASE("handshake client: a subprotocol that was not offered fails") {
  ws::HttpResponse r = good_response(kSampleKey);
  set_field(r, "Sec-WebSocket-Protocol", "mqtt");
  check_client_fails(r, kSampleKey);
  set_field(r, "Sec-WebSocket-Protocol", "chat, superchat");
  check_client_fails(r, kSampleKey);
  set_field(r, "Sec-WebSocket-Protocol", "");
  check_client_fails(r, kSampleKey);
  // Offering none and getting one also fails.
  std::string chosen;
  CHECK(ws::check_handshake_response(good_response(kSampleKey), kSampleKey, {}, chosen).code ==
        ws::Errc::handshake_failed);
}

TEST_CASE("handshake client: any Sec-WebSocket-Extensions fails (none offered)") {
  for (const char* ext : {"permessage-deflate", "x-foo; a=1", "a, b", ";bad"}) {
    ws::HttpResponse r = good_response(kSampleKey);
    r.add("Sec-WebSocket-Extensions", ext);
    CAPTURE(ext);
    check_client_fails(r, kSampleKey);
  }
  // An empty list is no extension.
  ws::HttpResponse r = good_response(kSampleKey);
  r.add("Sec-WebSocket-Extensions", "");
  std::string chosen;
  CHECK_FALSE(ws::check_handshake_response(r, kSampleKey, {"chat"}, chosen));
}
