#pragma once

// Payload parsing shared by the example daemons. Payloads are untrusted
// bytes: every function here accepts any input and never throws.

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.hpp"

namespace mesh::examples {

/// How a payload parsed as a number.
enum class parse_status {
  /// The payload is a number and `value` holds it.
  ok,
  /// The payload is not a number of the requested kind.
  not_a_number,
  /// The payload is a number that does not fit the requested type.
  out_of_range,
};

/// `text` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view text);

/// Parses `[ws][+|-]digits[ws]` as a signed 64-bit decimal integer.
parse_status parse_int64(bytes_view payload, int64_t& value);

/// Parses `[ws][+|-]number[ws]` where number is decimal or scientific
/// notation ("2.5", "-1e3"). "inf" and "nan" are not numbers here: they
/// would poison every aggregate that includes them.
parse_status parse_finite_double(bytes_view payload, double& value);

/// The shortest decimal text that reads back as exactly `x`.
std::string format_double(double x);

/// The payload for error messages: at most 32 bytes, quoted, with bytes that
/// are not printable ASCII shown as \xNN.
std::string quote_payload(bytes_view payload);

} // namespace mesh::examples
