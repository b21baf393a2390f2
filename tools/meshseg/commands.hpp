#pragma once

// The four meshseg commands. main.cpp parses the command line into these
// argument structs; each command writes its result to `out`, diagnostics to
// `err` (one "meshseg: ..." line per problem), and returns the exit code.

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace mesh::meshseg {

/// Process exit codes, documented in docs/meshseg.md.
enum exit_code : int {
  /// The command did what it was asked; verify found the log intact.
  exit_ok = 0,
  /// verify found damage that recovery would repair.
  exit_damaged = 1,
  /// Bad usage, bad input (missing directory, not a log, unreadable file) or
  /// a failed operation.
  exit_error = 2,
};

struct append_args {
  std::string dir;
  /// Payloads given on the command line, one record each.
  std::vector<std::string> payloads;
  /// A file with one record per line ("-" = stdin); empty when unused.
  std::string from_file;
  /// Payloads (or lines) are hex, e.g. "00ff".
  bool hex = false;
};

struct dump_args {
  std::string dir;
  /// One JSON object per record and line (JSON lines).
  bool json = false;
  /// Decode each payload as a meshd log entry (origin, epoch, daemon_seq,
  /// producer, status) and show the entry's own payload.
  bool entries = false;
};

struct verify_args {
  std::string dir;
  /// Run the recovery instead of only reporting what it would do.
  bool repair = false;
  /// With repair: also delete orphan generations holding records the live
  /// generation lacks (recovery_report::stranded); without it repair
  /// refuses and names them.
  bool force = false;
};

struct compact_args {
  std::string dir;
  /// Exactly one of these is set (main.cpp enforces it).
  std::optional<uint64_t> keep_last;
  std::optional<uint64_t> max_bytes;
  std::optional<uint64_t> max_age_seconds;
};

int run_append(const append_args& args, std::ostream& out, std::ostream& err);
int run_dump(const dump_args& args, std::ostream& out, std::ostream& err);
int run_verify(const verify_args& args, std::ostream& out, std::ostream& err);
int run_compact(const compact_args& args, std::ostream& out, std::ostream& err);

} // namespace mesh::meshseg
