#include "examples/counter/counter.hpp"

#include <charconv>
#include <string>

#include "base/errc.hpp"
#include "examples/text.hpp"

namespace mesh::examples {

namespace {

constexpr size_t state_size = 8;

bytes as_text(int64_t x) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  (void)ec; // 24 bytes hold any int64_t
  return bytes(reinterpret_cast<const uint8_t*>(buf),
               reinterpret_cast<const uint8_t*>(end));
}

} // namespace

caf::expected<std::vector<bytes>> counter::process(const causal_event& ev) {
  int64_t delta = 1;
  switch (parse_int64(ev.payload, delta)) {
    case parse_status::ok: break;
    case parse_status::not_a_number: delta = 1; break;
    case parse_status::out_of_range:
      return make_error(errc::process_failed, "counter overflow: payload "
                                                + quote_payload(ev.payload)
                                                + " does not fit in 64 bits");
  }
  int64_t next = 0;
  if (__builtin_add_overflow(total_, delta, &next))
    return make_error(errc::process_failed,
                      "counter overflow: " + std::to_string(total_) + " + "
                        + std::to_string(delta));
  total_ = next;
  return one_output(as_text(total_));
}

std::optional<bytes> counter::snapshot() const {
  bytes out(state_size);
  store_le64(out.data(), static_cast<uint64_t>(total_));
  return out;
}

caf::error counter::restore(bytes_view state) {
  if (state.size != state_size)
    return make_error(errc::restore_failed,
                      "counter: state must be 8 bytes, got "
                        + std::to_string(state.size));
  total_ = static_cast<int64_t>(load_le64(state.data));
  return {};
}

} // namespace mesh::examples
