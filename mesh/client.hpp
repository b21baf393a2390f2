#pragma once

// mesh::client: everything meshctl does, for a program of your own
// (docs/client.md).
//
//   auto c = mesh::client::connect({{"127.0.0.1:7400", "127.0.0.1:7401"}});
//   if (!c) { ...describe(c.error())... }
//   auto dep = c->deploy("counter");
//   auto id = dep->daemons.front().origin_hash;
//   auto p = mesh::producer::open(*c, id, "feed.producer");
//   for (auto& line : lines)
//     if (auto err = p->push(to_bytes(line))) { ... }
//   if (auto err = p->flush()) { ... }
//
// Routing: a request for a daemon goes to the node the client last learned
// runs it (else to the node it connected to). A node that does not run the
// daemon answers moved{node, epoch}; the client connects there (it keeps a
// small pool of connections by address), remembers daemon -> node and asks
// once more there. More than 3 hops for one request is an error (a moved
// loop). A daemon whose node is down comes back as the node's error
// (unavailable, naming the node), never as a wait.
//
// Deadlines: every request has the options' timeout as its deadline, from
// the moment it is put on the wire; a node that is gone, frozen (SIGSTOP)
// or partitioned makes calls fail with timeout or target_unavailable
// within it, never hang.
//
// Errors are caf::errors with a mesh::errc code (base/errc.hpp): the
// node's refusals keep the node's code and words (daemon_not_found,
// factory_not_found, unavailable, ...); transport failures are
// target_unavailable and timeout.
//
// A client, its windows and producers are used by one thread at a time.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "base/bytes.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/link_crypto.hpp"

namespace mesh {

/// What authenticates the client's links (issue 9, DESIGN.md section 7).
struct client_credentials {
  /// The mesh's pre-shared key file (meshd --psk-file); empty: none.
  std::string psk_file;
  /// The client's own ed25519 key file; empty: none.
  std::string key_file;

  bool empty() const {
    return psk_file.empty() && key_file.empty();
  }
};

struct client_options {
  /// Nodes as HOST:PORT, tried in order until one connects.
  std::vector<std::string> nodes;
  /// The deadline of every request (and of connecting).
  std::chrono::milliseconds timeout{10000};
  client_credentials credentials;
  /// Credentials already loaded (meshctl loads them itself to word its
  /// errors); when set, `credentials` is not read. With neither, the client
  /// uses the open PSK and a fresh key: it reaches nodes that run without a
  /// PSK file (loopback only).
  std::shared_ptr<const link_credentials> link;
  /// Follow `moved` answers to the daemon's node (and cache the route).
  /// When false a `moved` answer is an error (errc::moved) naming the node.
  bool follow_moved = true;
  /// The protocol versions claimed (tests claim others).
  control::version_range speaks = control::supported_versions;
};

/// How many times one request may be redirected before the client calls it
/// a loop.
inline constexpr int max_moved_hops = 3;

class client {
public:
  /// Connects to the first of `opts.nodes` that answers, with an actor
  /// system of its own. Errors: invalid_argument (no nodes, a malformed
  /// address), target_unavailable / timeout naming every address tried.
  static caf::expected<client> connect(client_options opts);

  /// The same on `sys`, which must have the middleman loaded and outlive
  /// the client.
  static caf::expected<client> connect(caf::actor_system& sys,
                                       client_options opts);

  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  ~client();

  /// Spawns `count` daemons of `kind` on the nodes placement picks: only
  /// nodes meeting every requirement (and the kind's own), only `on_node`
  /// when given. A partial deploy is not an error: `failure` says why the
  /// rest were not spawned. Nothing matching is no_target_available, with
  /// the reason per node.
  caf::expected<control::deploy_response>
  deploy(const std::string& kind, uint32_t count = 1,
         std::vector<requirement> requirements = {},
         std::optional<entity_id> on_node = std::nullopt);

  /// The mesh's nodes as the node this client talks to sees them.
  caf::expected<std::vector<member_info>> nodes();

  /// Delivers `events` to the daemon as one batch, in order; one delivery
  /// per event (rejected events are deliveries, not errors).
  caf::expected<std::vector<delivery>> send(uint64_t daemon_id,
                                            std::vector<inbound_event> events);

  /// Highest producer_seq of `producer_id` the daemon applied (0 = none).
  caf::expected<uint64_t> high_water(uint64_t daemon_id, uint64_t producer_id);

  caf::expected<daemon_stats> stats(uint64_t daemon_id);

  caf::expected<control::snapshot_response> snapshot(uint64_t daemon_id);

  /// Makes a failed daemon serve again (accept_loss: skip lost inputs).
  caf::expected<control::daemon_entry> resume(uint64_t daemon_id,
                                              bool accept_loss = false);

  /// Stops the daemon and deletes its durable state.
  caf::error stop(uint64_t daemon_id);

  /// The daemons the node lists.
  caf::expected<std::vector<control::daemon_entry>> daemons();

  /// The kinds the node spawns.
  caf::expected<std::vector<std::string>> kinds();

  /// Any request, routed like the typed calls: a request for a daemon
  /// follows `moved`; the answer comes back as the node wrote it (an
  /// error_response included), so callers can word refusals themselves.
  caf::expected<control::response> call(const control::request& req);

  /// The node the client connected to (HOST:PORT).
  const std::string& address() const;

  /// Where requests for `daemon_id` go now.
  std::string route_of(uint64_t daemon_id) const;

  std::chrono::milliseconds timeout() const;

  struct impl;

private:
  friend class send_window;

  explicit client(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

/// Keeps up to `window` batches in flight to one daemon, in order (CAF keeps
/// the order of messages between two actors, and a node applies one
/// daemon's batches in arrival order). Each confirmed batch is reported to
/// `on_batch` in order. The first failure stops it: no further batch is
/// sent, the batches still in flight are awaited (their answers dropped:
/// they may have been applied) and push()/finish() return that error from
/// then on.
///
/// Because a node applies one daemon's batches in order, what got applied
/// of a window cut short (a crash of this process, a lost link) is always
/// a prefix of what was sent; a producer's high-water mark is therefore an
/// exact resume point.
class send_window {
public:
  using batch_callback = std::function<void(const control::send_request&,
                                            const std::vector<delivery>&)>;

  struct options {
    /// Batches in flight at most (at least 1).
    size_t window = 8;
    /// A batch with a rejected event is a failure (errc::process_failed
    /// naming the producer_seq and the daemon's words). When false,
    /// rejected events are only reported through on_batch.
    bool stop_on_rejected = true;
    batch_callback on_batch;
  };

  send_window(client& c, uint64_t daemon_id, options opts);
  send_window(send_window&&) noexcept;
  send_window& operator=(send_window&&) noexcept;
  ~send_window();

  /// Puts one batch on the wire, first waiting for the oldest one when the
  /// window is full. Returns the first failure seen (this batch is then not
  /// sent).
  caf::error push(std::vector<inbound_event> events);

  /// Waits for every batch in flight.
  caf::error finish();

  size_t in_flight() const;

  /// Batches confirmed so far.
  uint64_t confirmed() const;

  /// The node the batches go to now.
  const std::string& address() const;

  struct state;

private:
  std::unique_ptr<state> st_;
};

/// What a producer has done so far.
struct producer_progress {
  /// Payloads pushed (the last producer_seq numbered).
  uint64_t pushed = 0;
  /// Payloads not sent because the high-water mark covered them.
  uint64_t skipped = 0;
  /// Events sent.
  uint64_t sent = 0;
  uint64_t applied = 0;
  /// Events the daemon had applied before (resent ones).
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  /// Every producer_seq up to here is applied (or was skipped).
  uint64_t confirmed_through = 0;
};

/// An exactly-once stream of events to one daemon under a stable producer
/// id. The n-th payload pushed is producer_seq n, in every run: re-running
/// the same stream after any failure (this process killed, the node
/// restarted, the link lost) skips what the daemon already applied (its
/// high-water mark for the producer, asked at open) and sends the rest, and
/// the daemon answers anything sent twice as a duplicate. So no event is
/// applied twice and, once flush() succeeds, none is lost.
class producer {
public:
  struct options {
    /// Events per batch (at least 1).
    size_t batch = 100;
    /// Batches in flight at most.
    size_t window = 8;
    /// Ask the high-water mark at open and do not send what it covers.
    bool skip_applied = true;
    bool stop_on_rejected = true;
    /// Each confirmed batch with its deliveries, in order.
    send_window::batch_callback on_batch;
  };

  /// A producer whose id lives in the nonce file `producer_file` (format:
  /// persistence/nonce_file.hpp, the file `meshctl send --producer-file`
  /// uses), created on first use. Errors: the nonce file's, and those of
  /// the high-water request.
  static caf::expected<producer> open(client& c, uint64_t daemon_id,
                                      const std::string& producer_file,
                                      options opts);
  static caf::expected<producer> open(client& c, uint64_t daemon_id,
                                      const std::string& producer_file);

  /// A producer with the id `producer_id` (not 0), e.g. a fresh random one
  /// for a stream that is never resumed.
  static caf::expected<producer> with_id(client& c, uint64_t daemon_id,
                                         uint64_t producer_id, options opts);

  producer(producer&&) noexcept;
  producer& operator=(producer&&) noexcept;
  ~producer();

  /// Numbers `payload` as the next producer_seq; skips it when the
  /// high-water mark covers it, else adds it to the batch being filled and
  /// sends that batch when full.
  caf::error push(bytes payload);

  /// Sends the partial batch and waits for every batch in flight.
  caf::error flush();

  uint64_t id() const;

  /// The daemon's high-water mark for this producer when it was opened (0
  /// without skip_applied).
  uint64_t high_water() const;

  const producer_progress& progress() const;

  struct state;

private:
  explicit producer(std::unique_ptr<state> st);

  std::unique_ptr<state> st_;
};

} // namespace mesh
