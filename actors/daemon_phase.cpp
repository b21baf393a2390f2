#include "actors/daemon_phase.hpp"

#include <algorithm>
#include <string>

#include <caf/error.hpp>

#include "base/bytes.hpp"
#include "base/errc.hpp"

namespace mesh {

const char* to_string(daemon_phase p) {
  switch (p) {
    case daemon_phase::starting: return "starting";
    case daemon_phase::running: return "running";
    case daemon_phase::standby: return "standby";
    case daemon_phase::frozen: return "frozen";
    case daemon_phase::failed: return "failed";
    case daemon_phase::stopped: return "stopped";
  }
  return "unknown";
}

std::optional<daemon_phase> parse_daemon_phase(std::string_view text) {
  for (auto i = 0; i <= static_cast<int>(last_daemon_phase); ++i) {
    auto p = static_cast<daemon_phase>(i);
    if (text == to_string(p))
      return p;
  }
  return std::nullopt;
}

bool transition_allowed(daemon_phase from, daemon_phase to) {
  return std::any_of(phase_transitions.begin(), phase_transitions.end(),
                     [from, to](const phase_transition& t) {
                       return t.from == from && t.to == to;
                     });
}

caf::error check_transition(daemon_phase from, daemon_phase to) {
  if (transition_allowed(from, to))
    return {};
  return make_error(errc::wrong_phase,
                    std::string{"a daemon in phase "} + to_string(from)
                      + " cannot move to phase " + to_string(to));
}

caf::error wrong_phase_error(const char* what, daemon_phase needed,
                             daemon_phase actual, uint64_t origin) {
  return make_error(errc::wrong_phase, std::string{what} + " needs phase "
                                         + to_string(needed) + ", daemon "
                                         + hex_u64(origin) + " is "
                                         + to_string(actual));
}

} // namespace mesh
