#include "examples/echo/echo.hpp"

namespace mesh::examples {

caf::expected<std::vector<bytes>> echo::process(const causal_event& ev) {
  return one_output(ev.payload);
}

} // namespace mesh::examples
