#include "actors/limits.hpp"

#include <string>

#include "actors/batch.hpp"
#include "base/errc.hpp"

namespace mesh::limits {

caf::error check(const event_batch& b) {
  if (b.size() > max_batch_events)
    return make_error(errc::limit_exceeded, "a batch of "
                                              + std::to_string(b.size())
                                              + " events exceeds the limit of "
                                              + std::to_string(max_batch_events)
                                              + " events per batch");
  if (b.payload_bytes() > max_batch_bytes)
    return make_error(errc::limit_exceeded,
                      "a batch of " + std::to_string(b.payload_bytes())
                        + " payload bytes exceeds the limit of "
                        + std::to_string(max_batch_bytes) + " bytes per batch");
  for (size_t i = 0; i < b.size(); ++i)
    if (b[i].payload.size > max_event_payload)
      return make_error(errc::limit_exceeded,
                        "event " + std::to_string(i) + " of the batch has a "
                          + std::to_string(b[i].payload.size)
                          + "-byte payload, over the limit of "
                          + std::to_string(max_event_payload)
                          + " bytes per event");
  return {};
}

} // namespace mesh::limits
