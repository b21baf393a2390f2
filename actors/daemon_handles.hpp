#pragma once

// The runtime facade's cache of daemon actor handles (origin -> handle),
// filled by asking the supervisor (lookup_atom) on a miss. A handle goes
// stale when its daemon stops, or stops and comes back as a new actor: then
// a request to it bounces (the old actor's mailbox is closed), and
// with_daemon() drops the handle and tries once more with a fresh one.

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

#include <caf/expected.hpp>

#include "actors/blocking_client.hpp"
#include "actors/messages.hpp"
#include "base/errc.hpp"

namespace mesh {

class daemon_handles {
public:
  /// Asks the supervisor for the handle of one daemon.
  using lookup_function = std::function<caf::expected<daemon_actor>(uint64_t)>;

  explicit daemon_handles(lookup_function lookup);

  /// The cached handle of `origin`, or a fresh one when `refresh` or none is
  /// cached.
  caf::expected<daemon_actor> find(uint64_t origin, bool refresh = false);

  void forget(uint64_t origin);
  void clear();

  /// Runs `attempt(handle)` (an expected<R>) with the handle of `origin`.
  /// When the request bounced (bounced(): the daemon never read it) the
  /// handle was stale: it is dropped and the attempt runs once more with a
  /// fresh one. A daemon that read the request and then stopped answers
  /// daemon_not_found itself: that is never retried, since the request may
  /// have had effects. A bounce comes back as daemon_not_found.
  template<class R, class F>
  caf::expected<R> with_daemon(uint64_t origin, F attempt) {
    for (int i = 0; i < 2; ++i) {
      auto h = find(origin, i > 0);
      if (!h)
        return h.error();
      caf::expected<R> r = attempt(*h);
      if (r)
        return r;
      if (bounced(r.error())) {
        forget(origin);
        continue;
      }
      if (is(r.error(), errc::daemon_not_found))
        forget(origin);
      return r;
    }
    return make_error(errc::daemon_not_found,
                      "no daemon " + hex_u64(origin) + " on this node");
  }

private:
  lookup_function lookup_;
  std::mutex mtx_;
  std::unordered_map<uint64_t, daemon_actor> cache_;
};

} // namespace mesh
