#pragma once

// The meshctl commands. main.cpp parses the command line into these argument
// structs and connects to the node; each command talks to the mesh through
// a mesh::client (mesh/client.hpp), writes its result to `out` (a table or text
// for people, JSON with --json), diagnostics to `err` (one "meshctl: ..." line
// per problem), and returns the exit code.

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "mesh/client.hpp"

namespace mesh::meshctl {

/// Process exit codes, documented in docs/operations.md.
enum exit_code : int {
  /// The node did what was asked.
  exit_ok = 0,
  /// The node answered with an error (unknown daemon, unknown kind, ...),
  /// rejected an event, or deployed fewer daemons than asked.
  exit_refused = 1,
  /// Bad usage or bad input (unparsable id, unreadable file, invalid hex).
  exit_usage = 2,
  /// The node could not be reached, went away, or did not answer in time.
  exit_unreachable = 3,
};

/// What every command gets.
struct session {
  mesh::client& client;
  std::ostream& out;
  std::ostream& err;
  bool json = false;
};

struct deploy_args {
  std::string kind;
  uint32_t count = 1;
  /// --require texts, parsed by mesh/placement.hpp.
  std::vector<std::string> requires;
  /// --on: a node id (64 hex digits); empty = any node.
  std::string on;
};

struct send_args {
  uint64_t daemon_id = 0;
  /// The one payload; unused with from_file.
  std::string payload;
  /// Payload (or every line) is hex, e.g. "00ff".
  bool hex = false;
  /// One event per line ("-" = stdin); empty = send `payload`.
  std::string from_file;
  /// Nonce file holding the stable producer id; empty = a random producer
  /// id for this run (no resume across runs).
  std::string producer_file;
  /// Events per message.
  uint32_t batch = 100;
  /// Messages in flight at most.
  uint32_t window = 8;
  /// Ask the node's high-water mark first and do not send lines it already
  /// applied.
  bool skip_applied = true;
  /// Print every output (one per line; JSON lines with --json) while
  /// streaming a file.
  bool print_outputs = false;
  /// Seconds between progress lines when stderr is not a terminal.
  uint32_t progress_every = 5;
};

struct snapshot_args {
  uint64_t daemon_id = 0;
  /// Write the snapshot bytes here; empty = only print its size.
  std::string out_file;
};

struct high_water_args {
  uint64_t daemon_id = 0;
  std::optional<uint64_t> producer_id;
  std::string producer_file;
};

int run_daemons(session& s);
int run_nodes(session& s);
int run_kinds(session& s);
int run_deploy(session& s, const deploy_args& args);
int run_send(session& s, const send_args& args);
int run_send_file(session& s, const send_args& args);
int run_stats(session& s, uint64_t daemon_id);
int run_snapshot(session& s, const snapshot_args& args);
int run_stop(session& s, uint64_t daemon_id);
int run_high_water(session& s, const high_water_args& args);

struct resume_args {
  uint64_t daemon_id = 0;
  /// Skip the inputs the daemon's failure lost.
  bool accept_loss = false;
};

int run_resume(session& s, const resume_args& args);

/// Parses a daemon id as `meshctl daemons` prints it: hex, "0x" optional,
/// 1 to 16 digits. Errors: invalid_argument naming the text.
caf::expected<uint64_t> parse_daemon_id(const std::string& text);

} // namespace mesh::meshctl
