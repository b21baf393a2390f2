#pragma once

// One connection of mesh::client to one node's gateway, with any number of
// requests in flight (private to mesh/client.cpp; not installed).
//
// control_client sends one request at a time and waits for it, which is
// enough for commands but not for a window of batches: a window needs the
// next batch on the wire while the previous ones are still being applied.
// Here the client thread hands requests to a forwarding actor (one
// anon_send each, so they leave in the order they were started) and later
// waits for each answer by ticket, up to the deadline the ticket got when it
// was started. Answers land in a mutex-guarded inbox, so no scoped_actor
// (with its request timeouts lingering in the mailbox) is kept across calls.
//
// The forwarding actor talks to whatever actor takes (request_atom,
// wire_bytes) -> wire_bytes: today the node's gateway itself, reached
// through the middleman; once the link layer seals frames, the caller actor
// that seals them (docs/client.md, "Credentials").

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "mesh/control_codec.hpp"
#include "mesh/link_crypto.hpp"

namespace mesh::client_detail {

struct connection_inbox;

class connection {
public:
  using clock = std::chrono::steady_clock;

  /// Connects to the gateway at `address` (HOST:PORT). Errors:
  /// invalid_argument (bad address, no middleman), target_unavailable
  /// (cannot connect, nothing published), timeout.
  static caf::expected<std::unique_ptr<connection>>
  open(caf::actor_system& sys, const std::string& address,
       std::chrono::milliseconds timeout, control::version_range speaks,
       const link_credentials& creds);

  ~connection();

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Puts `req` on the wire and returns its ticket (its request id). Its
  /// deadline is now + the timeout.
  uint64_t start(const control::request& req);

  /// Waits for the answer to `ticket` (each ticket once). Errors: timeout
  /// past its deadline, target_unavailable when the node went away, and the
  /// checks of control_client::call (corrupt_data for another id,
  /// unsupported_version for a version outside the client's range).
  caf::expected<control::response> wait(uint64_t ticket);

  /// start() then wait(). A node that predates version negotiation is asked
  /// again in version 1 (as control_client does).
  caf::expected<control::response> call(const control::request& req);

  /// How the node treats requests for daemons it does not run (version 3):
  /// forward them, or answer `moved` (a client that follows moved asks for
  /// that, then talks to the daemon's node directly).
  void set_route(control::route_mode r) {
    flags_.route = r;
  }

  /// Requests started and not waited for.
  size_t in_flight() const {
    return deadlines_.size();
  }

  /// True once the connection to the node is lost.
  bool gone() const;

  const std::string& address() const {
    return address_;
  }

private:
  connection(caf::actor forwarder, std::shared_ptr<connection_inbox> inbox,
             std::string address, std::chrono::milliseconds timeout,
             control::version_range speaks);

  caf::actor forwarder_;
  std::shared_ptr<connection_inbox> inbox_;
  std::string address_;
  std::chrono::milliseconds timeout_;
  control::version_range speaks_;
  control::request_flags flags_;
  uint64_t next_id_ = 0;
  /// The version of the last answer (0: a node older than negotiation).
  uint16_t last_version_ = 0;
  std::unordered_map<uint64_t, clock::time_point> deadlines_;
};

} // namespace mesh::client_detail
