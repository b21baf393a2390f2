#pragma once

// `window`: sum and average over the last `size` numbers received.
//
// Payload: a finite decimal number as text ("3", "-2.5", "1e3"); surrounding
// ASCII whitespace is ignored. Anything else rejects the event.
// Output: one event per input, "sum=<s> avg=<a> n=<count>", numbers in their
// shortest round-trip decimal form ("sum=7.5 avg=2.5 n=3").
// State (state_version 1), little-endian:
//
//   +------------+----------+-----------+---------------------------+
//   | version u32| size u32 | count u32 | count x f64 (oldest first)|
//   +------------+----------+-----------+---------------------------+
//
// restore() replaces the window size with the one in the state.

#include <cstdint>
#include <deque>

#include "actors/daemon.hpp"

namespace mesh::examples {

class window : public daemon {
public:
  /// The factory name.
  static constexpr std::string_view kind_name = "window";

  static constexpr uint32_t default_size = 10;

  /// Largest window; process() is O(size) because it re-sums the window to
  /// stay exact across restore.
  static constexpr uint32_t max_size = 65536;

  /// The format snapshot() writes and restore() reads.
  static constexpr uint32_t format_version = 1;

  /// Throws std::invalid_argument unless 1 <= size <= max_size: a bad size
  /// is a bug in the caller, not bad input.
  explicit window(uint32_t size = default_size);

  std::string_view kind() const override {
    return kind_name;
  }

  /// Errors: process_failed when the payload is not a finite number or the
  /// sum would overflow; the window is unchanged.
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override;

  std::optional<bytes> snapshot() const override;

  /// Errors: restore_failed on a wrong length, unknown version, size outside
  /// 1..max_size, count above size, or a value (or sum) that is not finite.
  /// The window is unchanged on error.
  caf::error restore(bytes_view state) override;

  uint32_t state_version() const override {
    return format_version;
  }

  uint32_t size() const {
    return size_;
  }

  const std::deque<double>& values() const {
    return values_;
  }

private:
  uint32_t size_;
  /// Oldest first; never more than size_ entries.
  std::deque<double> values_;
};

} // namespace mesh::examples
