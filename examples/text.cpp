#include "examples/text.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace mesh::examples {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
         || c == '\f';
}

/// from_chars accepts '-' but not '+'; strips a lone '+' so "+5" parses
/// while "+-5" and "+" stay invalid.
std::string_view strip_plus(std::string_view text) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-' && text[1] != '+')
    text.remove_prefix(1);
  return text;
}

template<class T, class... Format>
parse_status parse_number(bytes_view payload, T& value, Format... fmt) {
  auto text = strip_plus(trim(payload.as_chars()));
  if (text.empty())
    return parse_status::not_a_number;
  T parsed{};
  auto first = text.data();
  auto last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, parsed, fmt...);
  if (end != last || ec == std::errc::invalid_argument)
    return parse_status::not_a_number;
  if (ec == std::errc::result_out_of_range)
    return parse_status::out_of_range;
  value = parsed;
  return parse_status::ok;
}

} // namespace

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

parse_status parse_int64(bytes_view payload, int64_t& value) {
  return parse_number(payload, value);
}

parse_status parse_finite_double(bytes_view payload, double& value) {
  auto text = trim(payload.as_chars());
  // from_chars spells infinities and NaNs as letters; anything it accepts
  // must start with a digit, a point or a sign followed by one of those.
  auto body = text;
  if (!body.empty() && (body[0] == '+' || body[0] == '-'))
    body.remove_prefix(1);
  if (body.empty()
      || !(std::isdigit(static_cast<unsigned char>(body[0])) || body[0] == '.'))
    return parse_status::not_a_number;
  double parsed = 0;
  auto st = parse_number(payload, parsed, std::chars_format::general);
  if (st != parse_status::ok)
    return st;
  if (!std::isfinite(parsed))
    return parse_status::out_of_range;
  value = parsed;
  return parse_status::ok;
}

std::string format_double(double x) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  if (ec != std::errc{})
    return "?";
  return std::string(buf, end);
}

std::string quote_payload(bytes_view payload) {
  constexpr size_t max_shown = 32;
  std::string out = "\"";
  size_t n = payload.size < max_shown ? payload.size : max_shown;
  for (size_t i = 0; i < n; ++i) {
    auto c = payload.data[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char esc[5];
      std::snprintf(esc, sizeof(esc), "\\x%02x", c);
      out += esc;
    }
  }
  out += '"';
  if (payload.size > max_shown)
    out += "... (" + std::to_string(payload.size) + " bytes)";
  return out;
}

} // namespace mesh::examples
