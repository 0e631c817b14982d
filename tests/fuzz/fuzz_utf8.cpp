// Fuzz target: the UTF-8 validator against a plain reference decoder (RFC 3629 §3-4), whole
// and split at a position taken from the input.
#include <cstdint>
#include <cstdlib>

#include "../../websocket.hpp"

// Decodes code point by code point; rejects overlongs, surrogates and values > U+10FFFF.
static bool reference_valid(const std::uint8_t* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    std::uint32_t c = s[i];
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    std::uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    static const std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Random bytes are rarely valid for long, and the x86 block path only runs on 64 bytes and
// more of non-ASCII text: so the input also spells text, a piece per byte. Below E0: a valid
// sequence (boundary code points of each length); E0..EF: one that is almost valid (each
// rule of RFC 3629 broken once); F0..FF: the next input byte, raw.
static void check(const std::uint8_t* data, std::size_t size);

static std::size_t spell(const std::uint8_t* data, std::size_t size, std::uint8_t* out) {
  static const char* const kValid[16] = {
      "a",   " ",   "\x7F", "\xC2\x80", "\xDF\xBF", "\xC3\xA9", "\xE0\xA0\x80", "\xED\x9F\xBF",
      "\xEE\x80\x80", "\xEF\xBF\xBF", "\xE2\x82\xAC", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "\xF3\xBF\xBF\xBF", "\xF0\x9F\x98\x80", "0"};
  static const char* const kAlmost[16] = {
      "\xC0\x80", "\xC1\xBF", "\xE0\x9F\xBF", "\xED\xA0\x80", "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80",
      "\xF5\x80\x80\x80", "\xFF", "\x80", "\xBF", "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xC3\xA9\xA9", "\xE2\x82\xAC\x80", "\xF8\x88\x80\x80\x80"};
  std::size_t n = 0;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] >= 0xF0 && i + 1 < size) {
      out[n++] = data[++i];
      continue;
    }
    for (const char* p = (data[i] < 0xE0 ? kValid : kAlmost)[data[i] & 15]; *p; ++p) out[n++] = static_cast<std::uint8_t>(*p);
  }
  return n;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check(data, size);
  if (size > 4096) return 0;
  static std::uint8_t text[5 * 4096];
  check(text, spell(data, size, text));
  return 0;
}

static void check(const std::uint8_t* data, std::size_t size) {
  const bool expected = reference_valid(data, size);
  ws::Utf8Validator whole;
  bool got = whole.feed(data, size) && whole.complete();
  if (got != expected) std::abort();
  std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  ws::Utf8Validator split;
  bool ok = split.feed(data, cut);
  ok = split.feed(data + cut, size - cut) && ok;
  if ((ok && split.complete()) != expected) std::abort();
}
