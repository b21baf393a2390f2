#pragma once

// How meshseg prints records and values: payloads as text or hex, timestamps
// as UTC, strings as JSON. Pure functions, no I/O.

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.hpp"

namespace mesh::meshseg {

/// True when every byte is printable ASCII (0x20..0x7e), so the payload can
/// be shown as text without escaping or ambiguity. The empty payload is text.
bool printable(bytes_view payload);

/// "2025-11-22T20:41:03.123456789Z" for unix nanoseconds.
std::string format_utc(uint64_t unix_ns);

/// `s` as a JSON string literal, quotes included. Control characters,
/// quotes and backslashes are escaped; bytes >= 0x80 that do not form valid
/// UTF-8 are replaced with U+FFFD so the output is always valid JSON.
std::string json_string(std::string_view s);

} // namespace mesh::meshseg
