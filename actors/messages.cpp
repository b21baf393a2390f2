#include "actors/messages.hpp"

#include <caf/actor_system_config.hpp>

namespace mesh {

caf::actor_system_config&
register_message_types(caf::actor_system_config& cfg) {
  return cfg.add_message_types<caf::id_block::meshd>();
}

} // namespace mesh
