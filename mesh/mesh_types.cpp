#include "mesh/mesh_types.hpp"

namespace mesh {

const char* to_string(node_state s) noexcept {
  switch (s) {
    case node_state::up: return "up";
    case node_state::suspect: return "suspect";
    case node_state::down: return "down";
  }
  return "unknown";
}

} // namespace mesh
