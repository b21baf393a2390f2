#pragma once

// Causal events: what daemons consume and emit. A daemon's outputs form a
// hash chain under its own origin_hash, so a receiver can detect gaps and
// reordering:
//   sequence    increases by one per output; genesis is 0
//   parent_hash XXH3-64(previous link bytes || previous payload); 0 at genesis
// docs/formats.md (section 3, "Causal link") has the byte layout the hash runs
// over.

#include <cstdint>

#include "base/bytes.hpp"

namespace mesh {

struct causal_link {
  uint64_t origin_hash = 0;
  uint64_t sequence = 0;
  uint64_t parent_hash = 0;
  /// Logical horizon: the highest input daemon_seq this output depends on.
  uint64_t horizon = 0;

  friend bool operator==(const causal_link& x, const causal_link& y) {
    return x.origin_hash == y.origin_hash && x.sequence == y.sequence
           && x.parent_hash == y.parent_hash && x.horizon == y.horizon;
  }
};

/// Serialized size of a link: four u64, little-endian, in field order.
constexpr size_t causal_link_size = 32;

void encode_link(const causal_link& link, uint8_t* out);

/// XXH3-64 over encode_link(link) followed by `payload`: the parent_hash of
/// the output that follows.
uint64_t link_hash(const causal_link& link, bytes_view payload);

struct causal_event {
  causal_link link;
  bytes payload;
  uint64_t received_at_ns = 0;
};

/// The head of an output chain: what the next output needs.
struct chain_head {
  /// Sequence of the last output emitted (0 with `hash` 0 = nothing yet).
  uint64_t sequence = 0;
  /// link_hash of the last output (0 = nothing emitted yet).
  uint64_t hash = 0;

  friend bool operator==(const chain_head& x, const chain_head& y) {
    return x.sequence == y.sequence && x.hash == y.hash;
  }
};

/// Builds a daemon's output chain.
class chain_builder {
public:
  chain_builder() = default;
  chain_builder(uint64_t origin_hash, chain_head head)
    : origin_(origin_hash), head_(head) {}

  /// Links the next output; `horizon` is the input seq it answers.
  causal_link next(bytes_view payload, uint64_t horizon);

  const chain_head& head() const {
    return head_;
  }

  /// True once the genesis output has been emitted.
  bool started() const {
    return started_ || head_.hash != 0;
  }

private:
  uint64_t origin_ = 0;
  chain_head head_;
  bool started_ = false;
};

/// Checks that `link` directly follows `prev` (with `prev_payload`).
[[nodiscard]] bool follows(const causal_link& prev, bytes_view prev_payload,
                           const causal_link& link);

} // namespace mesh
