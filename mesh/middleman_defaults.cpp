#include "mesh/middleman_defaults.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/timespan.hpp>

namespace mesh {

void apply_middleman_defaults(caf::actor_system_config& cfg,
                              middleman_timeouts t) {
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{
            std::chrono::duration_cast<caf::timespan>(t.heartbeat_interval)});
  cfg.set("middleman.connection-timeout",
          caf::timespan{
            std::chrono::duration_cast<caf::timespan>(t.connection_timeout)});
}

} // namespace mesh
