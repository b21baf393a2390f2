// Definitions of fsync_policy and retention (fsync_policy.hpp): the
// factories, which clamp to the documented limits, and the text form that
// parse() reads and to_string() writes.

#include "persistence/fsync_policy.hpp"

#include <algorithm>
#include <vector>

#include "base/errc.hpp"

namespace mesh {

// -- fsync_policy and retention -----------------------------------------------

fsync_policy fsync_policy::never() {
  fsync_policy p;
  p.type = kind::never;
  p.n = 0;
  return p;
}

fsync_policy fsync_policy::every_n(uint64_t n) {
  fsync_policy p;
  p.type = kind::every_n;
  p.n = std::max<uint64_t>(n, 1);
  return p;
}

fsync_policy fsync_policy::interval(std::chrono::milliseconds period) {
  fsync_policy p;
  p.type = kind::interval;
  p.n = 0;
  p.period = std::clamp(period, std::chrono::milliseconds{1}, max_period);
  return p;
}

fsync_policy fsync_policy::interval_or_bytes(std::chrono::milliseconds period,
                                             uint64_t bytes) {
  fsync_policy p = interval(period);
  p.type = kind::interval_or_bytes;
  p.bytes = std::max<uint64_t>(bytes, 1);
  return p;
}

namespace {

enum class parsed { ok, not_a_number, too_large };

// Decimal digits only; refuses values past `max` instead of wrapping.
parsed parse_u64(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty())
    return parsed::not_a_number;
  uint64_t v = 0;
  bool over = false;
  for (char c : s) {
    if (c < '0' || c > '9')
      return parsed::not_a_number;
    auto d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10)
      over = true;
    else
      v = v * 10 + d;
  }
  if (over || v > max)
    return parsed::too_large;
  out = v;
  return parsed::ok;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

} // namespace

caf::expected<fsync_policy> fsync_policy::parse(std::string_view text) {
  auto bad = [&](const char* why) {
    return make_error(errc::invalid_argument,
                      "bad fsync policy '" + std::string{text} + "': " + why
                        + " (use never, every_n:N, interval:MS or "
                          "interval_or_bytes:MS:BYTES)");
  };
  auto parts = split(text, ':');
  const auto max_ms = static_cast<uint64_t>(max_period.count());
  // Parses one positive field no larger than `max`; on failure returns the
  // reason, naming the limit.
  auto field = [](std::string_view s, const char* name, uint64_t max,
                  uint64_t& out) -> std::string {
    switch (parse_u64(s, max, out)) {
      case parsed::ok:
        if (out > 0)
          return {};
        [[fallthrough]];
      case parsed::not_a_number:
        return std::string{name} + " must be a positive integer";
      case parsed::too_large:
        return std::string{name} + " must be at most " + std::to_string(max);
    }
    return "?";
  };
  uint64_t a = 0;
  uint64_t b = 0;
  if (parts[0] == "never" && parts.size() == 1)
    return never();
  if (parts[0] == "every_n" && parts.size() == 2) {
    if (auto why = field(parts[1], "N", UINT64_MAX, a); !why.empty())
      return bad(why.c_str());
    return every_n(a);
  }
  if (parts[0] == "interval" && parts.size() == 2) {
    if (auto why = field(parts[1], "MS", max_ms, a); !why.empty())
      return bad(why.c_str());
    return interval(std::chrono::milliseconds{a});
  }
  if (parts[0] == "interval_or_bytes" && parts.size() == 3) {
    if (auto why = field(parts[1], "MS", max_ms, a); !why.empty())
      return bad(why.c_str());
    if (auto why = field(parts[2], "BYTES", UINT64_MAX, b); !why.empty())
      return bad(why.c_str());
    return interval_or_bytes(std::chrono::milliseconds{a}, b);
  }
  return bad("unknown form");
}

std::string fsync_policy::to_string() const {
  switch (type) {
    case kind::never: return "never";
    case kind::every_n: return "every_n:" + std::to_string(n);
    case kind::interval: return "interval:" + std::to_string(period.count());
    case kind::interval_or_bytes:
      return "interval_or_bytes:" + std::to_string(period.count()) + ":"
             + std::to_string(bytes);
  }
  return "?";
}

retention retention::keep_last(uint64_t n) {
  return {kind::keep_last, n};
}

retention retention::max_bytes(uint64_t bytes) {
  return {kind::max_bytes, bytes};
}

retention retention::max_age(std::chrono::nanoseconds age) {
  return {kind::max_age_ns,
          static_cast<uint64_t>(std::max<int64_t>(age.count(), 0))};
}

retention retention::before_seq(uint64_t seq) {
  return {kind::before_seq, seq};
}

} // namespace mesh
