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

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bool expected = reference_valid(data, size);
  ws::Utf8Validator whole;
  bool got = whole.feed(data, size) && whole.complete();
  if (got != expected) std::abort();
  std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  ws::Utf8Validator split;
  bool ok = split.feed(data, cut);
  ok = split.feed(data + cut, size - cut) && ok;
  if ((ok && split.complete()) != expected) std::abort();
  return 0;
}
