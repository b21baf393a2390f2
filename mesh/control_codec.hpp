#pragma once

// The control protocol's messages as C++ values, and their Cap'n Proto
// encoding (mesh/control.capnp, docs/protocol.md).
//
// A request or response crosses the network as the bytes of one Cap'n Proto
// message in a std::vector<char> (a CAF builtin type, so BASP carries it
// without type registration). decode_request() and decode_response() take
// untrusted bytes: they check the size, read with explicit traversal and
// nesting limits, validate every field they convert, and return an error
// (never throw) for anything malformed.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <caf/expected.hpp>

#include "actors/runtime.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"

namespace mesh::control {

/// The version this build speaks; Request.version must equal it.
inline constexpr uint16_t protocol_version = 1;

/// Largest encoded message either side accepts: room for a maximal snapshot
/// (snapshot/snapshot.hpp, 64 MiB) plus framing.
inline constexpr size_t max_message_bytes = 80u << 20;

/// Deepest pointer nesting a valid message has is 5 (Response -> send list
/// -> Delivery -> outputs list -> CausalEvent -> payload); anything deeper
/// is hostile.
inline constexpr int max_nesting_depth = 16;

/// Bytes as they travel inside the CAF message.
using wire_bytes = std::vector<char>;

// -- requests -----------------------------------------------------------------

/// Lists the node's daemons.
struct daemons_request {};

/// Lists the kinds the node can spawn.
struct kinds_request {};

/// Spawns `count` daemons of `kind`, each with a fresh identity.
struct deploy_request {
  std::string kind;
  uint32_t count = 1;
};

/// Delivers `events` to one daemon, in order, as one batch.
struct send_request {
  uint64_t daemon_id = 0;
  std::vector<inbound_event> events;
};

/// Asks for the highest producer_seq of `producer_id` the daemon applied.
struct high_water_request {
  uint64_t daemon_id = 0;
  uint64_t producer_id = 0;
};

struct stats_request {
  uint64_t daemon_id = 0;
};

/// Takes (and persists) a snapshot and returns it.
struct snapshot_request {
  uint64_t daemon_id = 0;
};

/// Stops a daemon and deletes its durable state.
struct stop_request {
  uint64_t daemon_id = 0;
};

/// Makes a failed daemon serve again (runtime::resume). `accept_loss`
/// skips inputs its failure lost.
struct resume_request {
  uint64_t daemon_id = 0;
  bool accept_loss = false;
};

using request = std::variant<daemons_request, kinds_request, deploy_request,
                             send_request, high_water_request, stats_request,
                             snapshot_request, stop_request, resume_request>;

// -- responses ----------------------------------------------------------------

/// The request failed as a whole. `code` is a mesh::errc value; a peer
/// running a newer build may send codes this build has no name for.
struct error_response {
  errc code = errc::invalid_argument;
  std::string message;
};

struct daemons_response {
  std::vector<daemon_info> daemons;
};

struct kinds_response {
  std::vector<std::string> kinds;
};

/// The daemons spawned, in order. When spawning stopped before `count`,
/// `failure` says why; the daemons spawned before it keep running.
struct deploy_response {
  std::vector<daemon_info> daemons;
  std::optional<error_response> failure;
};

/// One delivery per event of the request, in the same order.
struct send_response {
  std::vector<delivery> deliveries;
};

struct high_water_response {
  uint64_t producer_seq = 0;
};

struct stats_response {
  daemon_stats stats;
};

struct snapshot_response {
  /// The signed snapshot encoding (snapshot/snapshot.hpp).
  bytes snapshot;
  /// The last input daemon_seq the snapshot reflects.
  uint64_t through_seq = 0;
};

struct stop_response {};

/// The daemon as it runs again.
struct resume_response {
  daemon_info daemon;
};

using response = std::variant<
  error_response, daemons_response, kinds_response, deploy_response,
  send_response, high_water_response, stats_response, snapshot_response,
  stop_response, resume_response>;

// -- codec --------------------------------------------------------------------

/// Encodes `req` with version = protocol_version.
wire_bytes encode(const request& req);

wire_bytes encode(const response& res);

/// Errors: corrupt_data (empty, not a whole number of words, larger than
/// max_message_bytes, malformed, too deep, a field out of range),
/// unsupported_version (another protocol version, or a request type this
/// build does not know).
caf::expected<request> decode_request(const wire_bytes& data);

/// Errors as decode_request.
caf::expected<response> decode_response(const wire_bytes& data);

/// The error as it crosses the wire: its errc code and its context string.
/// Errors of other categories (CAF's own) map to `fallback` with their
/// describe() text as the message.
error_response to_error_response(const caf::error& err,
                                 errc fallback = errc::io_error);

/// The caf::error a client reports for `err`.
caf::error to_error(const error_response& err);

/// The name of the request's type as the protocol spells it ("send", ...).
const char* name_of(const request& req);

} // namespace mesh::control
