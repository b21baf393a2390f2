#include "snapshot/causal.hpp"

#include <cstring>

// The streaming state lives on the stack, which needs the full definition of
// XXH3_state_t; inlining the implementation provides it without depending on
// the shared library's private struct layout.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace mesh {

void encode_link(const causal_link& link, uint8_t* out) {
  store_le64(out, link.origin_hash);
  store_le64(out + 8, link.sequence);
  store_le64(out + 16, link.parent_hash);
  store_le64(out + 24, link.horizon);
}

uint64_t link_hash(const causal_link& link, bytes_view payload) {
  // Small payloads: one-shot XXH3 over link || payload copied into one stack
  // buffer. XXH3 gives the same value one-shot and streaming over the same
  // bytes; the streaming state costs more than the copy for short inputs.
  constexpr size_t one_shot_max = 256;
  if (payload.size <= one_shot_max - causal_link_size) {
    uint8_t buf[one_shot_max];
    encode_link(link, buf);
    if (payload.size > 0)
      std::memcpy(buf + causal_link_size, payload.data, payload.size);
    return XXH3_64bits(buf, causal_link_size + payload.size);
  }
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  uint8_t buf[causal_link_size];
  encode_link(link, buf);
  XXH3_64bits_update(&state, buf, sizeof(buf));
  XXH3_64bits_update(&state, payload.data, payload.size);
  return XXH3_64bits_digest(&state);
}

causal_link chain_builder::next(bytes_view payload, uint64_t horizon) {
  causal_link link;
  link.origin_hash = origin_;
  if (started()) {
    link.sequence = head_.sequence + 1;
    link.parent_hash = head_.hash;
  }
  link.horizon = horizon;
  head_.sequence = link.sequence;
  head_.hash = link_hash(link, payload);
  started_ = true;
  return link;
}

bool follows(const causal_link& prev, bytes_view prev_payload,
             const causal_link& link) {
  return link.origin_hash == prev.origin_hash
         && link.sequence == prev.sequence + 1
         && link.parent_hash == link_hash(prev, prev_payload);
}

} // namespace mesh
