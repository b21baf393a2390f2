#pragma once

// The node's own producer identity. When the node itself produces events
// (forwarding, timers, migration hand-offs) it numbers them under one stable
// producer_id, kept in <data>/producer.nonce (persistence/nonce_file.hpp) so
// that it survives restarts; after a restart the node resumes each stream
// from the receiving daemon's high-water mark, exactly like a client.
//
// The actor serializes first use: concurrent askers never see two ids.

#include <string>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"

namespace mesh {

using producer_id_atom = caf::atom_constant<caf::atom("producer")>;

/// Answers the node's producer_id; loads or creates the nonce file on the
/// first request (an error when the data directory is missing or the file is
/// damaged). An empty path gives a random id for this process only.
using nonce_actor = caf::typed_actor<
  caf::replies_to<producer_id_atom>::with<uint64_t>>;

nonce_actor spawn_nonce_actor(caf::actor_system& sys, std::string path);

} // namespace mesh
