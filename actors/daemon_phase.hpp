#pragma once

// The phase of one daemon and the one table of moves between phases
// (DESIGN.md section 6). The daemon actor holds its phase and changes it
// only through check_transition(); the supervisor mirrors it in its table
// and daemon_info carries it to operators.
//
//   starting -> running | standby
//   running  -> frozen                  (migration source at cut-over)
//   frozen   -> running                 (release: the migration aborted)
//   standby  -> running                 (activate: migration target)
//   failed   -> running                 (resume)
//   any other -> failed, any other -> stopped
//
// What each phase accepts:
//   starting  nothing but the move out of it: the actor is being set up.
//   running   everything.
//   standby   restored and not routable (the supervisor's lookup refuses
//             it): deliveries get wrong_phase; it applies replayed log
//             entries only, until activated (-> running) or stopped.
//   frozen    new input is held in arrival order with its reply handle,
//             up to a bound; release applies it (-> running), forward hands
//             it to another actor, which answers the producers (the phase
//             stays frozen: a migration source stops after that).
//   failed    deliveries get daemon_failed with the reason; resume brings it
//             back (-> running).
//   stopped   terminal: the actor has quit and the supervisor forgot it.
//
// Decided beyond the design: a move to the phase one is in is refused (a
// second freeze or activate is a caller's mistake, not a no-op); nothing
// enters `starting`; `stopped` leaves to nowhere; standby and frozen do not
// reach each other; a failed daemon comes back only as running (a standby
// copy that failed is discarded and sent again by its migration).

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include <caf/fwd.hpp>

namespace mesh {

enum class daemon_phase : uint8_t {
  /// Its actor is being set up; leaves at once for running, standby or
  /// failed.
  starting,
  /// Serving input.
  running,
  /// Restored as a migration target: applies replayed log entries only.
  standby,
  /// A migration source at cut-over: holds new input until released or
  /// forwarded.
  frozen,
  /// Past its restart policy, or its durable state is damaged.
  failed,
  /// Stopped; terminal.
  stopped,
};

/// The highest value, for range checks of decoded bytes.
constexpr daemon_phase last_daemon_phase = daemon_phase::stopped;

/// One allowed move.
struct phase_transition {
  daemon_phase from;
  daemon_phase to;
};

/// Every allowed move; any pair not listed is refused.
inline constexpr std::array<phase_transition, 15> phase_transitions{{
  {daemon_phase::starting, daemon_phase::running},
  {daemon_phase::starting, daemon_phase::standby},
  {daemon_phase::starting, daemon_phase::failed},
  {daemon_phase::starting, daemon_phase::stopped},
  // Freeze.
  {daemon_phase::running, daemon_phase::frozen},
  {daemon_phase::running, daemon_phase::failed},
  {daemon_phase::running, daemon_phase::stopped},
  // Activate.
  {daemon_phase::standby, daemon_phase::running},
  {daemon_phase::standby, daemon_phase::failed},
  {daemon_phase::standby, daemon_phase::stopped},
  // Release (the migration aborted).
  {daemon_phase::frozen, daemon_phase::running},
  {daemon_phase::frozen, daemon_phase::failed},
  {daemon_phase::frozen, daemon_phase::stopped},
  // Resume.
  {daemon_phase::failed, daemon_phase::running},
  {daemon_phase::failed, daemon_phase::stopped},
}};

/// "starting", "running", ...
const char* to_string(daemon_phase p);

/// The phase named `text` (as to_string() spells it); nullopt otherwise.
std::optional<daemon_phase> parse_daemon_phase(std::string_view text);

/// Whether `from -> to` is in phase_transitions.
[[nodiscard]] bool transition_allowed(daemon_phase from, daemon_phase to);

/// None when `from -> to` is allowed; otherwise wrong_phase naming both.
[[nodiscard]] caf::error check_transition(daemon_phase from, daemon_phase to);

/// wrong_phase for a request `what` that needs phase `needed` while the
/// daemon is in `actual` ("freeze needs phase running, daemon 0x.. is
/// standby").
caf::error wrong_phase_error(const char* what, daemon_phase needed,
                             daemon_phase actual, uint64_t origin);

} // namespace mesh
