// Fuzz target: the frame header decoder and the masking routine.
// A decoded header must re-encode to the same bytes (lengths are minimal, so the encoding is
// unique), every proper prefix must ask for more bytes, and unmasking in pieces must equal
// unmasking at once.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../websocket.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ws::FrameHeader h;
  int n = ws::decode_frame_header(data, size, h);
  if (n > 0) {
    if (n < 2 || n > 14 || static_cast<std::size_t>(n) > size) std::abort();
    std::uint8_t again[ws::kMaxFrameHeader];
    std::size_t m = ws::encode_frame_header(h, again);
    if (m != static_cast<std::size_t>(n) || std::memcmp(again, data, m) != 0) std::abort();
    for (std::size_t k = 0; k < m; ++k) {
      ws::FrameHeader partial;
      if (ws::decode_frame_header(data, k, partial) != 0) std::abort();
    }
  }
  if (size >= 5) {
    const std::uint8_t* key = data;
    std::vector<std::uint8_t> whole(data + 4, data + size), pieces = whole;
    ws::apply_mask(whole.data(), whole.size(), key, 0);
    std::size_t at = 0, step = 1 + data[4] % 13;
    while (at < pieces.size()) {
      std::size_t len = step < pieces.size() - at ? step : pieces.size() - at;
      ws::apply_mask(pieces.data() + at, len, key, at);
      at += len;
      step = step * 3 % 17 + 1;
    }
    if (whole != pieces) std::abort();
    for (std::size_t i = 0; i < whole.size(); ++i)
      if (whole[i] != (data[4 + i] ^ key[i & 3])) std::abort();
  }
  return 0;
}
