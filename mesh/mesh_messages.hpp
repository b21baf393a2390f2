#pragma once

// The messages between the gateway and the node's mesh actor
// (mesh/mesh_service.hpp), and their answers. Local only: their types are
// not registered with CAF, so BASP cannot carry them and a peer cannot send
// them.
//   mesh_heartbeat_in  -> heartbeat          (a peer's heartbeat; our own back)
//   mesh_probe_in      -> bool               (reach a node for a peer)
//   mesh_directory_in  -> std::vector<directory_entry>
//   mesh_nodes         -> std::vector<member_info>
//   mesh_route         -> mesh_route_result
//   mesh_place         -> std::vector<mesh_share>
//   mesh_peers         -> mesh_peer_list
//   mesh_admit         -> bool               (may this node run a kind?)
//   mesh_local_change  (no answer)          (the gateway deployed or stopped)

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "mesh/control_codec.hpp"
#include "mesh/mesh_types.hpp"

namespace mesh {

/// Where a daemon lives, for the gateway.
struct mesh_route_result {
  enum class where : uint8_t {
    /// No entry, or a tombstone.
    unknown,
    /// The directory says this node (the gateway's own lookup missed it).
    local,
    /// Another node that is up (or suspect).
    remote,
    /// Another node, which is down or unknown to membership.
    unavailable,
  };
  where what = where::unknown;
  directory_entry entry;
  /// The node's address ("" when unknown).
  std::string address;
  /// The link to it; null while not connected.
  caf::actor link;
};

/// One node's share of a deployment.
struct mesh_share {
  entity_id node{};
  std::string address;
  uint32_t count = 0;
  /// Null for this node.
  caf::actor link;
};

/// A node to ask for its daemons, or one that is down with what the
/// directory says it ran.
struct mesh_peer {
  entity_id id{};
  std::string address;
  node_state state = node_state::up;
  caf::actor link;
  std::vector<directory_entry> entries;
};

struct mesh_peer_list {
  std::vector<mesh_peer> peers;
};

struct mesh_heartbeat_in {
  heartbeat beat;
  /// The key that authenticated the link it came over.
  entity_id peer{};
};

struct mesh_probe_in {
  control::probe_request probe;
};

struct mesh_directory_in {
  control::directory_request req;
  entity_id peer{};
};

struct mesh_nodes {};

struct mesh_route {
  uint64_t origin = 0;
};

struct mesh_place {
  control::deploy_request req;
};

struct mesh_peers {};

/// Whether this node may run `kind`: the kind's own requirements
/// (daemon::requirements()) against this node's capabilities. Answers true,
/// or no_target_available naming what the node lacks. A node checks it
/// before spawning its share of a deployment another node placed (that
/// node may lack the kind's plugin, and so its requirements).
struct mesh_admit {
  std::string kind;
};

/// A daemon was deployed here (entry.stopped false) or stopped here (true;
/// the epoch is taken from the directory).
struct mesh_local_change {
  std::vector<directory_entry> entries;
};

} // namespace mesh

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_route_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_peer_list)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_heartbeat_in)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_probe_in)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_directory_in)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_nodes)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_route)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_place)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_peers)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_admit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::mesh_local_change)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::heartbeat)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mesh::directory_entry>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mesh::member_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mesh::mesh_share>)
