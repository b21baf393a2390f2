#pragma once

// The one error enum of meshd. Every layer returns these codes inside a
// caf::error (category "meshd"), with a human-readable context string that
// names the file, id or value involved. Code 0 is reserved by CAF for "no
// error", so the enum starts at 1. Values are part of the wire protocol:
// append new ones at the end, never renumber.

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>

namespace mesh {

enum class errc : uint8_t {
  /// The runtime has not been started yet.
  not_ready = 1,
  /// The runtime is shutting down and accepts no new work.
  shutting_down,
  /// A factory for this daemon kind is already registered.
  factory_already_registered,
  /// No factory is registered for the requested daemon kind.
  factory_not_found,
  /// A daemon with the same identity is already running.
  already_registered,
  /// No daemon with this id exists on the node.
  daemon_not_found,
  /// A snapshot was restored under a different entity id than it was taken.
  snapshot_identity_mismatch,
  /// A signature did not verify.
  bad_signature,
  /// The daemon's restore() failed.
  restore_failed,
  /// The daemon's process() rejected an event.
  process_failed,
  /// Bytes on disk or on the wire are malformed or fail their checksum.
  corrupt_data,
  /// An operating-system I/O call failed.
  io_error,
  /// A segment whose rollback failed refuses all writes until reopened.
  poisoned,
  /// The peer did not prove the mesh PSK or its request MAC is wrong.
  unauthenticated,
  /// The daemon lives on another node now.
  moved,
  /// A request arrived in a phase of the daemon (or migration) that does not
  /// take it (actors/daemon_phase.hpp).
  wrong_phase,
  /// The daemon is already being migrated.
  already_migrating,
  /// No node satisfies the placement filter.
  no_target_available,
  /// The chosen target node is down or unreachable.
  target_unavailable,
  /// An operation did not finish in time.
  timeout,
  /// The caller passed an argument outside the accepted range.
  invalid_argument,
  /// A file, directory or record does not exist.
  not_found,
  /// A file exists in a format version this build does not read.
  unsupported_version,
  /// A secret file is readable by group or others.
  insecure_permissions,
  /// A file or name that must be new already exists.
  already_exists,
  /// A payload, batch or request is larger than the limit the error names.
  limit_exceeded,
  /// The daemon has failed (the error says why) and refuses input until an
  /// operator acts on it (docs/operations.md, "Failed daemons").
  daemon_failed,
  /// The daemon's node is down (the error names the node): every request
  /// to it fails at once until the node is back.
  unavailable,
};

/// Returns the enum value's name, e.g. "io_error".
std::string_view to_string(errc x) noexcept;

/// Builds a caf::error of category "meshd" carrying `what` as context.
caf::error make_error(errc code, std::string what);

/// Builds a caf::error without context.
caf::error make_error(errc code);

/// The errc inside `err`, or nullopt-like 0 when `err` is empty or not ours.
errc code_of(const caf::error& err) noexcept;

/// True when `err` carries exactly `code`.
bool is(const caf::error& err, errc code) noexcept;

/// One line for people: "io_error: open /x/idx: Permission denied".
std::string describe(const caf::error& err);

} // namespace mesh
