#include "examples/window/window.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "base/errc.hpp"
#include "examples/text.hpp"

namespace mesh::examples {

namespace {

constexpr size_t header_size = 12;

/// Sums oldest to newest, the same order before and after a restore, so a
/// restored window prints exactly what the original would have.
template<class Iter>
double sum_of(Iter first, Iter last) {
  double s = 0;
  for (; first != last; ++first)
    s += *first;
  return s;
}

uint64_t bits_of(double x) {
  uint64_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

double double_of(uint64_t u) {
  double x = 0;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

caf::error restore_error(std::string what) {
  return make_error(errc::restore_failed, "window: " + std::move(what));
}

} // namespace

window::window(uint32_t size) : size_(size) {
  if (size == 0 || size > max_size)
    throw std::invalid_argument("window size " + std::to_string(size)
                                + " outside 1.." + std::to_string(max_size));
}

caf::expected<std::vector<bytes>> window::process(const causal_event& ev) {
  double x = 0;
  switch (parse_finite_double(ev.payload, x)) {
    case parse_status::ok: break;
    case parse_status::not_a_number:
      return make_error(errc::process_failed,
                        "window: payload is not a number: "
                          + quote_payload(ev.payload));
    case parse_status::out_of_range:
      return make_error(errc::process_failed,
                        "window: payload is out of range: "
                          + quote_payload(ev.payload));
  }
  auto first = values_.begin();
  if (values_.size() == size_)
    ++first;
  auto sum = sum_of(first, values_.end()) + x;
  if (!std::isfinite(sum))
    return make_error(errc::process_failed,
                      "window: sum overflows with payload "
                        + quote_payload(ev.payload));
  if (values_.size() == size_)
    values_.pop_front();
  values_.push_back(x);
  auto n = values_.size();
  auto line = "sum=" + format_double(sum)
              + " avg=" + format_double(sum / static_cast<double>(n))
              + " n=" + std::to_string(n);
  return one_output(bytes(line.begin(), line.end()));
}

std::optional<bytes> window::snapshot() const {
  bytes out(header_size + 8 * values_.size());
  store_le32(out.data(), format_version);
  store_le32(out.data() + 4, size_);
  store_le32(out.data() + 8, static_cast<uint32_t>(values_.size()));
  auto p = out.data() + header_size;
  for (auto x : values_) {
    store_le64(p, bits_of(x));
    p += 8;
  }
  return out;
}

caf::error window::restore(bytes_view state) {
  if (state.size < header_size)
    return restore_error("state is " + std::to_string(state.size)
                         + " bytes, shorter than its 12-byte header");
  auto version = load_le32(state.data);
  auto size = load_le32(state.data + 4);
  auto count = load_le32(state.data + 8);
  if (version != format_version)
    return restore_error("unsupported state version "
                         + std::to_string(version));
  if (size == 0 || size > max_size)
    return restore_error("window size " + std::to_string(size) + " outside 1.."
                         + std::to_string(max_size));
  if (count > size)
    return restore_error("count " + std::to_string(count)
                         + " exceeds window size " + std::to_string(size));
  auto expected = header_size + 8 * static_cast<size_t>(count);
  if (state.size != expected)
    return restore_error("state is " + std::to_string(state.size)
                         + " bytes, expected " + std::to_string(expected)
                         + " for " + std::to_string(count) + " values");
  std::deque<double> values;
  auto p = state.data + header_size;
  for (uint32_t i = 0; i < count; ++i, p += 8) {
    auto x = double_of(load_le64(p));
    if (!std::isfinite(x))
      return restore_error("value " + std::to_string(i) + " is not finite");
    values.push_back(x);
  }
  if (!std::isfinite(sum_of(values.begin(), values.end())))
    return restore_error("sum of the values is not finite");
  size_ = size;
  values_ = std::move(values);
  return {};
}

} // namespace mesh::examples
