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
//
// Every request carries a request id, echoed by its response, and the range
// of versions its client speaks; the node answers in the newest version
// both speak. Adding a request type: docs/protocol.md, "How to add a
// request".

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <caf/expected.hpp>

#include "actors/batch.hpp"
#include "actors/daemon_info.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "identity/fwd.hpp"
#include "mesh/mesh_types.hpp"

namespace mesh::control {

/// A closed range of protocol versions.
struct version_range {
  uint16_t min = 0;
  uint16_t max = 0;

  bool contains(uint16_t v) const {
    return min <= v && v <= max;
  }
};

/// "1..2", or "1" when min == max: how errors name a range.
std::string to_string(version_range r);

/// The versions this build speaks, as a client and as a node. Adjacent
/// versions interoperate: the two sides use the newest version both speak.
///   1: the first protocol (no request ids, no `moved`).
///   2: request ids echoed by responses, the `moved` response, version
///      negotiation (Request.minVersion, Response.version).
///   3: the mesh: nodes, heartbeat, probe, directory and localDaemons
///      requests, Request.route and Request.forwarded, placement fields in
///      deploy, the node of each daemon.
inline constexpr version_range supported_versions{1, 3};

/// The newest version this build speaks.
inline constexpr uint16_t protocol_version = supported_versions.max;

/// Largest encoded message either side accepts: room for a maximal snapshot
/// (snapshot/snapshot.hpp, 64 MiB) plus framing.
inline constexpr size_t max_message_bytes = 80u << 20;

/// Deepest pointer nesting a valid message has is 5 (Response -> send list
/// -> Delivery -> outputs list -> CausalEvent -> payload); anything deeper
/// is hostile.
inline constexpr int max_nesting_depth = 16;

/// Bytes as they travel inside the CAF message.
using wire_bytes = std::vector<char>;

/// A daemon as the protocol shows it (DaemonInfo). The wire carries the
/// phase by name (the schema's text field `state`), so adding a phase never
/// changes the schema; a name this client does not know is corrupt_data.
struct daemon_entry {
  uint64_t origin_hash = 0;
  /// All zero when the daemon's record is damaged and its key unknown.
  entity_id id{};
  std::string kind;
  /// Last input daemon_seq applied.
  uint64_t last_seq = 0;
  daemon_phase phase = daemon_phase::running;
  uint64_t epoch = 0;
  /// Why the daemon failed (empty while running).
  std::string reason;
  /// The node that runs it (all zero from a node older than version 3)
  /// and that node's address.
  entity_id node{};
  std::string node_address;
  /// Its node is down: `phase` is the last one known, and requests to it
  /// get `unavailable`.
  bool unavailable = false;
};

/// What a node sends for `info`.
daemon_entry to_entry(const daemon_info& info);

// -- requests and their responses ---------------------------------------------
//
// One struct per request type, named like its union member in
// control.capnp, with `using response = ...` naming its successful answer.
// Each has one binding in control_codec.cpp (its union tag, how its request
// and response are read and written) and one handler in gateway.cpp.

/// Lists the node's daemons.
struct daemons_response {
  std::vector<daemon_entry> daemons;
};
struct daemons_request {
  using response = daemons_response;
};

/// Lists the kinds the node can spawn.
struct kinds_response {
  std::vector<std::string> kinds;
};
struct kinds_request {
  using response = kinds_response;
};

/// The request failed as a whole. `code` is a mesh::errc value; a peer
/// running a newer build may send codes this build has no name for.
struct error_response {
  errc code = errc::invalid_argument;
  std::string message;
};

/// The daemons spawned, in order. When spawning stopped before `count`,
/// `failure` says why; the daemons spawned before it keep running.
struct deploy_response {
  std::vector<daemon_entry> daemons;
  std::optional<error_response> failure;
};
/// Spawns `count` daemons of `kind`, each with a fresh identity, on the
/// nodes placement picks (DESIGN.md section 3).
struct deploy_request {
  using response = deploy_response;

  deploy_request() = default;
  deploy_request(std::string k, uint32_t n) : kind(std::move(k)), count(n) {}

  std::string kind;
  uint32_t count = 1;
  /// Every one must hold on a node that gets daemons.
  std::vector<requirement> requirements;
  /// Only this node may run them.
  std::optional<entity_id> on_node;
  /// Spawn them all on the receiving node (placement is done): what a
  /// node sends each node of its plan. The receiver still checks the
  /// kind's own requirements against itself; a client setting it gets no
  /// more than `on_node` naming the node would give it.
  bool here = false;
};

/// One delivery per event of the request, in the same order.
struct send_response {
  std::vector<delivery> deliveries;
};
/// Delivers `events` to one daemon, in order, as one batch.
struct send_request {
  using response = send_response;
  uint64_t daemon_id = 0;
  std::vector<inbound_event> events;
};

struct high_water_response {
  uint64_t producer_seq = 0;
};
/// Asks for the highest producer_seq of `producer_id` the daemon applied.
struct high_water_request {
  using response = high_water_response;
  uint64_t daemon_id = 0;
  uint64_t producer_id = 0;
};

struct stats_response {
  daemon_stats stats;
};
struct stats_request {
  using response = stats_response;
  uint64_t daemon_id = 0;
};

struct snapshot_response {
  /// The signed snapshot encoding (snapshot/snapshot.hpp).
  bytes snapshot;
  /// The last input daemon_seq the snapshot reflects.
  uint64_t through_seq = 0;
};
/// Takes (and persists) a snapshot and returns it.
struct snapshot_request {
  using response = snapshot_response;
  uint64_t daemon_id = 0;
};

struct stop_response {};
/// Stops a daemon and deletes its durable state.
struct stop_request {
  using response = stop_response;
  uint64_t daemon_id = 0;
};

/// The daemon as it runs again.
struct resume_response {
  daemon_entry daemon;
};
/// Makes a failed daemon serve again (runtime::resume). `accept_loss`
/// skips inputs its failure lost.
struct resume_request {
  using response = resume_response;
  uint64_t daemon_id = 0;
  bool accept_loss = false;
};

/// The mesh's nodes as the answering node sees them (itself included).
struct nodes_response {
  std::vector<member_info> nodes;
};
struct nodes_request {
  using response = nodes_response;
};

/// Node to node: the sender's heartbeat, answered with the receiver's.
struct heartbeat_response {
  heartbeat beat;
};
struct heartbeat_request {
  using response = heartbeat_response;
  heartbeat beat;
};

/// Node to node: the indirect probe of SWIM. The receiver asks `target`
/// (at `address`) for its heartbeat and says whether it answered within
/// `timeout_ms`.
struct probe_response {
  bool reached = false;
};
struct probe_request {
  using response = probe_response;
  entity_id target{};
  std::string address;
  uint32_t timeout_ms = 0;
};

/// Node to node: entries to apply; the receiver's whole table comes back
/// when `want_table` is set (a joining node, anti-entropy).
struct directory_response {
  std::vector<directory_entry> entries;
};
struct directory_request {
  using response = directory_response;
  std::vector<directory_entry> entries;
  bool want_table = false;
  /// With want_table: the sender's per-bucket digests; the answer then
  /// holds only the buckets that differ (anti-entropy). Empty: the whole
  /// table.
  std::vector<uint64_t> bucket_digests;
};

/// Node to node: the daemons the receiving node runs (`daemons` gathers
/// them from every node).
struct local_daemons_response {
  std::vector<daemon_entry> daemons;
};
struct local_daemons_request {
  using response = local_daemons_response;
};

/// Every request type: the one list the codec and the gateway iterate.
using request = std::variant<daemons_request, kinds_request, deploy_request,
                             send_request, high_water_request, stats_request,
                             snapshot_request, stop_request, resume_request,
                             nodes_request, heartbeat_request, probe_request,
                             directory_request, local_daemons_request>;

/// What a node that does not run the addressed daemon does (version 3).
enum class route_mode : uint8_t {
  /// Pass the request on (one hop, with a deadline), relay the answer.
  forward = 0,
  /// Answer moved_response naming the node, so the client re-routes.
  redirect = 1,
};

/// How a request travels beyond its body (version 3).
struct request_flags {
  route_mode route = route_mode::forward;
  /// Set by the node that forwarded it: the receiver never forwards again.
  bool forwarded = false;
};

/// The daemon a request addressed lives on another node now (version 2 and
/// later; a version 1 client gets error_response{moved} instead).
struct moved_response {
  /// The node's address (host:port).
  std::string node;
  /// The daemon's epoch there.
  uint64_t epoch = 0;
};

namespace detail {

template<class Variant>
struct responses_of;

template<class... Requests>
struct responses_of<std::variant<Requests...>> {
  using type = std::variant<error_response, moved_response,
                            typename Requests::response...>;
};

} // namespace detail

/// error, moved, then each request type's response, in request order.
using response = detail::responses_of<request>::type;

/// A request as it travels: the request id the client chose (echoed by the
/// response) and, once decoded by a node, the version both sides agreed on.
struct request_frame {
  uint64_t id = 0;
  uint16_t version = 0;
  request body;
  request_flags flags;
};

/// A response as it travels.
struct response_frame {
  /// The request's id (0 from a version 1 node).
  uint64_t id = 0;
  /// The version it is written in (0 from a node that predates
  /// negotiation).
  uint16_t version = 0;
  response body;
};

// -- codec --------------------------------------------------------------------

/// Encodes `req` with request id `id`, claiming to speak `speaks`
/// (Request.minVersion and Request.version). A version 1 request (speaks.max
/// == 1) carries neither the id nor the range, as a version 1 client wrote.
wire_bytes encode(const request& req, uint64_t id = 0,
                  version_range speaks = supported_versions,
                  request_flags flags = {});

/// Encodes `res` as the answer to request `id` in protocol `version`. In
/// version 1, moved_response becomes error_response{moved} naming the node
/// and epoch, and the id and version are left out.
wire_bytes encode(const response& res, uint64_t id = 0,
                  uint16_t version = protocol_version);

/// Decodes a request as a node speaking `node` does: agrees on the newest
/// version both sides speak. Errors: corrupt_data (empty, not a whole number
/// of words, larger than max_message_bytes, malformed, too deep, a field
/// out of range), unsupported_version (no version in common: the message
/// names both ranges; or a request type this build does not know). When
/// the bytes got as far as the request id, `*id` is set even on error, so
/// the node's answer can echo it.
caf::expected<request_frame>
decode_request(const wire_bytes& data, version_range node = supported_versions,
               uint64_t* id = nullptr);

/// Errors as decode_request.
caf::expected<response_frame> decode_response(const wire_bytes& data);

/// The error as it crosses the wire: its errc code and its context string.
/// Errors of other categories (CAF's own) map to `fallback` with their
/// describe() text as the message.
error_response to_error_response(const caf::error& err,
                                 errc fallback = errc::io_error);

/// The caf::error a client reports for `err`.
caf::error to_error(const error_response& err);

/// The name of the request's type as the schema spells it ("send",
/// "highWater", ...), read from the schema itself.
const char* name_of(const request& req);

/// The name of every request type in the schema, in union order (tests check
/// that each has a binding and a handler).
std::vector<std::string> schema_request_names();

/// Whether the daemon failed (its state text is "failed").
bool is_failed(const daemon_entry& d);

} // namespace mesh::control
