#pragma once

// The values the mesh's parts exchange (DESIGN.md sections 3 and 7): what a
// node says about itself, what one node knows about another, a directory
// entry, a placement requirement. Plain data, no behaviour, no CAF: the
// membership core (mesh/membership.hpp), the directory (mesh/directory.hpp),
// placement (mesh/placement.hpp) and the control codec all use these, so
// each can be built and tested alone.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "identity/fwd.hpp"

namespace mesh {

/// Hashes a node id for unordered containers. Ids are public keys, which
/// only a PSK holder can get into a table, and random: the first 8 bytes
/// are as good as any hash.
struct entity_id_hash {
  size_t operator()(const entity_id& id) const noexcept {
    size_t h = 0;
    std::memcpy(&h, id.data(), sizeof(h));
    return h;
  }
};

/// What one node believes about another (DESIGN.md section 7).
///   up:      heard from within the suspect timeout.
///   suspect: silent past the suspect timeout; other nodes are asked to
///            probe it (indirect probes) before it is declared down.
///   down:    silent past the failure timeout and no indirect probe reached
///            it. Its daemons are `unavailable` until it comes back.
enum class node_state : uint8_t { up = 0, suspect = 1, down = 2 };

/// "up", "suspect", "down".
const char* to_string(node_state s) noexcept;

/// What a node offers (DESIGN.md section 3). Detected at start
/// (mesh::detect_capabilities) plus the operator's --tag and --label.
struct capabilities {
  /// Sorted, unique.
  std::vector<std::string> tags;
  std::map<std::string, std::string> labels;
  uint32_t cores = 0;
  uint64_t memory_mb = 0;
  /// The daemon kinds the node can spawn (built in and from plugins),
  /// sorted. A node that lacks a kind is never a placement candidate for it.
  std::vector<std::string> kinds;
};

/// How busy a node is, as it reports itself in every heartbeat.
struct node_load {
  /// Daemons the node runs (any phase but stopped).
  uint32_t daemons = 0;
  /// 1-minute load average divided by cores, clamped to [0, 1000];
  /// placement's tie-breaker after daemons per core.
  double saturation = 0;
};

/// What a node says about itself.
struct node_record {
  entity_id id{};
  /// Where its gateway listens ("host:port"), as peers should dial it.
  std::string address;
  /// Changes with every start of the node (its start time in ns since the
  /// epoch, made larger than any earlier one it persisted): a higher
  /// incarnation is a restarted node, whatever others believed about the
  /// old one.
  uint64_t incarnation = 0;
  capabilities caps;
  node_load load;
  /// Set by an operator (issue 10's drain); placement skips a drained node.
  bool drained = false;
};

/// One line of the member table: a node and what this node believes about
/// it.
struct member_info {
  node_record node;
  node_state state = node_state::up;
  /// Milliseconds since this node last heard from it (0 for itself).
  uint64_t silent_ms = 0;
};

/// One node as gossip spreads it: enough to dial it and to tell a restart
/// from an old rumour.
struct gossip_entry {
  entity_id id{};
  std::string address;
  uint64_t incarnation = 0;
};

/// Sent by every node to every other node it knows, every heartbeat
/// interval. It doubles as gossip: `known` lists the members the sender
/// knows, so a node that joined through one seed is known to all within a
/// heartbeat or two.
struct heartbeat {
  node_record from;
  std::vector<gossip_entry> known;
  /// The digest of the sender's directory (mesh/directory.hpp): a receiver
  /// whose digest differs asks for the table (anti-entropy).
  uint64_t directory_digest = 0;
  uint64_t directory_size = 0;
};

/// Where a daemon lives: origin_hash -> (node, epoch) (DESIGN.md section 7).
struct directory_entry {
  uint64_t origin = 0;
  /// The node that runs (or last ran) the daemon.
  entity_id node{};
  /// The daemon's life counter (DESIGN.md section 5.2): the higher epoch
  /// wins, whatever order updates arrive in.
  uint64_t epoch = 0;
  /// The daemon's kind, for listings of a down node's daemons.
  std::string kind;
  /// A tombstone: the daemon was stopped in this epoch. Kept so that an
  /// older entry arriving late cannot bring it back.
  bool stopped = false;
};

/// One hard placement requirement (`meshctl deploy --require ...`).
struct requirement {
  enum class type : uint8_t {
    tag = 0,           // tag=T: the node has tag T
    label = 1,         // label:K=V: the node's label K equals V
    min_cores = 2,     // min_cores=N
    min_memory_mb = 3, // min_memory_mb=M
  };
  type what = type::tag;
  /// The tag, or the label's key.
  std::string key;
  /// The label's value.
  std::string value;
  /// N or M.
  uint64_t number = 0;
};

} // namespace mesh
