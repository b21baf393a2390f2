#pragma once

// The sizes a daemon accepts, checked where a request arrives (the runtime
// facade, the daemon actor, the gateway) so that an oversized event is
// refused with an error naming the limit, before anything is applied or
// logged. docs/protocol.md lists them.

#include <cstddef>

#include <caf/error.hpp>

#include "persistence/log_entry.hpp"
#include "persistence/segment_format.hpp"

namespace mesh {

class event_batch;

namespace limits {

/// Largest payload of one event: its log entry (header + payload) must fit
/// one segment record.
constexpr size_t max_event_payload = segment_format::max_payload
                                     - log_entry_header_size;

/// Most events in one batch.
constexpr size_t max_batch_events = 65536;

/// Most payload bytes in one batch.
constexpr size_t max_batch_bytes = 64u << 20;

/// limit_exceeded naming the limit when `b` breaks one of the above.
caf::error check(const event_batch& b);

} // namespace limits

} // namespace mesh
