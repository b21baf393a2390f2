#pragma once

// `counter`: a running total of the integers it receives.
//
// Payload: a signed decimal integer as text ("42", "-7", " +3\n");
// surrounding ASCII whitespace is ignored. Any other payload counts as 1.
// Output: one event per input, the new total as decimal text.
// State: the total as 8 bytes, two's complement, little-endian.

#include <cstdint>

#include "actors/daemon.hpp"

namespace mesh::examples {

class counter : public daemon {
public:
  /// The factory name.
  static constexpr std::string_view kind_name = "counter";

  std::string_view kind() const override {
    return kind_name;
  }

  /// Errors: process_failed when the payload is an integer that does not fit
  /// in 64 bits or the new total would overflow; the total is unchanged.
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override;

  std::optional<bytes> snapshot() const override;

  /// Errors: restore_failed when `state` is not exactly 8 bytes; the total
  /// is unchanged.
  caf::error restore(bytes_view state) override;

  int64_t total() const {
    return total_;
  }

private:
  int64_t total_ = 0;
};

} // namespace mesh::examples
