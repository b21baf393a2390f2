#pragma once

// Atoms, message types and actor interfaces of one node, plus their CAF
// registration (one type-id block, loaded by register_message_types()).
//
// This is the runtime's protocol: every message in these interfaces is a
// plain value with an inspect() overload, registered in the block, so CAF
// can copy, print and serialize it, and the same request can be sent to an
// actor on another node. Nothing in-process (no shared_ptr reply channel, no
// std::function) travels in a message: an answer goes back as CAF's
// response to the request's sender (the blocking facade's sender is a tiny
// actor of its own, actors/reply.hpp). tests/actors/protocol_test.cpp
// round-trips every message through CAF's binary serializer.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/sec.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

#include "actors/batch.hpp"
#include "actors/daemon_info.hpp"
#include "actors/log_pin.hpp"
#include "actors/spawn_spec.hpp"
#include "persistence/log_entry.hpp"
#include "persistence/log_range.hpp"

namespace mesh {

// -- atoms --------------------------------------------------------------------

using append_atom = caf::atom_constant<caf::atom("append")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using snapped_atom = caf::atom_constant<caf::atom("snapped")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using hwm_atom = caf::atom_constant<caf::atom("hwm")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using info_atom = caf::atom_constant<caf::atom("info")>;
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using spawn_atom = caf::atom_constant<caf::atom("spawn")>;
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using compact_atom = caf::atom_constant<caf::atom("compact")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using broken_atom = caf::atom_constant<caf::atom("broken")>;
using freeze_atom = caf::atom_constant<caf::atom("freeze")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using forward_atom = caf::atom_constant<caf::atom("forward")>;
using activate_atom = caf::atom_constant<caf::atom("activate")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using phase_atom = caf::atom_constant<caf::atom("phase")>;
using pin_atom = caf::atom_constant<caf::atom("pin")>;
using unpin_atom = caf::atom_constant<caf::atom("unpin")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;

// -- inspection ---------------------------------------------------------------

/// An enum field as one byte for inspect(): pass `raw` and then `check()`.
/// On load, a byte above `max` is an error, so a deserialized message never
/// holds an enum value outside its range.
template<class Enum>
struct enum_byte {
  enum_byte(Enum& x, Enum max)
    : ref(x), raw(static_cast<uint8_t>(x)), max(static_cast<uint8_t>(max)) {}
  auto check() {
    return caf::meta::load_callback([this]() -> caf::error {
      if (raw > max)
        return caf::sec::invalid_argument;
      ref = static_cast<Enum>(raw);
      return caf::none;
    });
  }
  Enum& ref;
  uint8_t raw;
  uint8_t max;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, causal_link& x) {
  return f(caf::meta::type_name("causal_link"), x.origin_hash, x.sequence,
           x.parent_hash, x.horizon);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, causal_event& x) {
  return f(caf::meta::type_name("causal_event"), x.link, x.payload,
           x.received_at_ns);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_event& x) {
  return f(caf::meta::type_name("inbound_event"), x.producer_id, x.producer_seq,
           x.payload);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery& x) {
  enum_byte<delivery::status> state{x.state, delivery::status::rejected};
  return f(caf::meta::type_name("delivery"), state.raw, state.check(),
           x.daemon_seq, x.error, x.outputs);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_entry& x) {
  enum_byte<log_entry::status> state{x.state, log_entry::status::rejected};
  return f(caf::meta::type_name("log_entry"), x.origin_hash, x.epoch,
           x.daemon_seq, x.producer_id, x.producer_seq, x.received_at_ns,
           state.raw, state.check(), x.payload);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, daemon_stats& x) {
  return f(caf::meta::type_name("daemon_stats"), x.events_processed,
           x.events_emitted, x.duplicates, x.errors, x.snapshots_taken,
           x.restarts, x.last_seq);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, daemon_info& x) {
  enum_byte<daemon_phase> phase{x.phase, last_daemon_phase};
  return f(caf::meta::type_name("daemon_info"), x.origin_hash, x.id, x.kind,
           x.last_seq, phase.raw, phase.check(), x.epoch, x.reason);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch::header& x) {
  return f(caf::meta::type_name("event_header"), x.producer_id, x.producer_seq,
           x.offset, x.size);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
  return f(caf::meta::type_name("event_batch"), x.headers(), x.data());
}

template<class Inspector>
typename Inspector::result_type
inspect(Inspector& f, delivery_batch::result& x) {
  enum_byte<delivery::status> state{x.state, delivery::status::rejected};
  return f(caf::meta::type_name("delivery_result"), state.raw, state.check(),
           x.daemon_seq, x.error_offset, x.error_size, x.first_output,
           x.output_count);
}

template<class Inspector>
typename Inspector::result_type
inspect(Inspector& f, delivery_batch::output& x) {
  return f(caf::meta::type_name("delivery_output"), x.link, x.received_at_ns,
           x.offset, x.size);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery_batch& x) {
  return f(caf::meta::type_name("delivery_batch"), x.results(), x.outputs(),
           x.data());
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_batch& x) {
  return f(caf::meta::type_name("log_batch"), x.origin_hash, x.epoch, x.data,
           x.ends, x.daemon_seqs);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, spawn_spec& x) {
  return f(caf::meta::type_name("spawn_spec"), x.kind, x.seed,
           x.initial_snapshot, x.flags);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_range_request& x) {
  return f(caf::meta::type_name("log_range_request"), x.origin_hash, x.epoch,
           x.from_daemon_seq, x.to_daemon_seq, x.max_bytes, x.from_log_seq);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_range& x) {
  return f(caf::meta::type_name("log_range"), x.entries, x.next_log_seq,
           x.complete, x.at_end);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_pin& x) {
  return f(caf::meta::type_name("log_pin"), x.origin_hash, x.epoch,
           x.from_daemon_seq, x.owner, x.lease_ms);
}

// -- interfaces ---------------------------------------------------------------

/// The node's write-ahead event log (group commit over one segment).
using log_actor = caf::typed_actor<
  // Appends entries; answers the log seq of the last one once the append is
  // durable under the policy. Refused when the batch does not start where
  // the log ends for its daemon (after a failed batch of that daemon).
  caf::replies_to<append_atom, log_batch>::with<uint64_t>,
  // Internal: writes everything queued so far.
  caf::reacts_to<flush_atom>,
  // A daemon's snapshot (origin, epoch) covers its entries of that epoch
  // through daemon_seq.
  caf::reacts_to<snapped_atom, uint64_t, uint64_t, uint64_t>,
  // A daemon (origin, epoch) was stopped: its entries of that epoch and
  // older no longer hold back compaction.
  caf::reacts_to<forget_atom, uint64_t, uint64_t>,
  // The sender is the daemon actor of this (origin, epoch): the log asks it
  // to snapshot when its old entries hold compaction back.
  caf::reacts_to<attach_atom, uint64_t, uint64_t>,
  // The entries of one daemon (all epochs) with daemon_seq above the given
  // one, in log order.
  caf::replies_to<read_atom, uint64_t, uint64_t>::with<std::vector<log_entry>>,
  // One page of a range read of one daemon's entries of one epoch, served on
  // the log's reader thread beside the appender (persistence/log_range.hpp).
  caf::replies_to<read_atom, log_range_request>::with<log_range>,
  // Pins one daemon's entries from a daemon_seq on against compaction, or
  // renews the owner's pin; answers the log seq from which the log is held.
  // already_migrating when another owner holds a pin of that daemon.
  caf::replies_to<pin_atom, log_pin>::with<uint64_t>,
  // Releases the pin of (origin, owner); refused for any other owner.
  caf::replies_to<unpin_atom, uint64_t, std::string>::with<bool>,
  // Internal: the lease of an origin's pin may have run out.
  caf::reacts_to<expire_atom, uint64_t>,
  // Closes the segment (fsync); answers true on success.
  caf::replies_to<close_atom>::with<bool>>;

/// One daemon.
using daemon_actor = caf::typed_actor<
  // Applies the events in order; one answer per event, released only after
  // their log entries are durable under the node's fsync policy.
  caf::replies_to<deliver_atom, event_batch>::with<delivery_batch>,
  caf::replies_to<hwm_atom, uint64_t>::with<uint64_t>,
  caf::replies_to<stats_atom>::with<daemon_stats>,
  caf::replies_to<info_atom>::with<daemon_info>,
  caf::replies_to<snapshot_atom>::with<bytes>,
  // Snapshots (when `final` and anything changed since the last snapshot)
  // and exits; an error when the final snapshot failed.
  caf::replies_to<stop_atom, bool>::with<bool>,
  // Exits and hands back the encoding of its final snapshot instead of
  // writing it (empty when nothing changed since the last one), so that the
  // caller writes many with one flush; an error when it could not be taken.
  caf::replies_to<stop_atom, snapshot_atom>::with<bytes>,
  // A failed daemon serves again from its last good state; `true` accepts
  // the loss of logged inputs (see daemon_core::resume).
  caf::replies_to<resume_atom, bool>::with<daemon_info>,
  // The log asks for a snapshot (this daemon holds compaction back).
  caf::reacts_to<compact_atom>, caf::reacts_to<tick_atom>,
  // -- phases (actors/daemon_phase.hpp); wrong_phase from any other phase --
  // running -> frozen: new input is held from now on. Answered once the
  // input that arrived before is applied and durable: last_seq is then the
  // cut-over point.
  caf::replies_to<freeze_atom>::with<daemon_info>,
  // frozen -> running: applies the held input in arrival order; answers how
  // many batches were held.
  caf::replies_to<release_atom>::with<uint64_t>,
  // Hands the held input, each batch with its producer's reply handle, to
  // the given actor (one that takes deliver_atom like a daemon actor); it
  // answers the producers. Stays frozen. Answers how many batches went.
  caf::replies_to<forward_atom, caf::actor>::with<uint64_t>,
  // standby -> running.
  caf::replies_to<activate_atom>::with<daemon_info>,
  // Standby only: applies log entries of this daemon in daemon_seq order
  // (entries it already holds are skipped; a gap or another origin refuses
  // the whole call) and logs them; answers last_seq once they are durable.
  caf::replies_to<replay_atom, std::vector<log_entry>>::with<uint64_t>>;

/// The node's supervisor: lifecycle and daemon table.
using supervisor_actor = caf::typed_actor<
  // Enters `ready`; every daemon logs to the given log actor (may be null).
  caf::replies_to<start_atom, log_actor>::with<bool>,
  // Builds the daemon the spec describes (factory, then restore from its
  // initial snapshot), writes its record and runs it.
  caf::replies_to<spawn_atom, spawn_spec>::with<daemon_info>,
  // A daemon whose durable state could not be loaded (it has no actor):
  // listed as failed with the reason until stopped.
  caf::reacts_to<broken_atom, daemon_info>,
  caf::replies_to<lookup_atom, uint64_t>::with<daemon_actor>,
  caf::replies_to<list_atom>::with<std::vector<daemon_info>>,
  caf::replies_to<stop_atom, uint64_t>::with<bool>,
  caf::replies_to<resume_atom, uint64_t, bool>::with<daemon_info>,
  caf::reacts_to<failed_atom, uint64_t, std::string>,
  caf::replies_to<shutdown_atom>::with<bool>,
  // -- phases: handed to the daemon's actor, which answers (see daemon_actor)
  caf::replies_to<freeze_atom, uint64_t>::with<daemon_info>,
  caf::replies_to<release_atom, uint64_t>::with<uint64_t>,
  caf::replies_to<forward_atom, uint64_t, daemon_actor>::with<uint64_t>,
  caf::replies_to<activate_atom, uint64_t>::with<daemon_info>,
  caf::replies_to<replay_atom, uint64_t,
                  std::vector<log_entry>>::with<uint64_t>,
  // From a daemon actor: its phase changed (only its own table entry is
  // updated, and only by its current actor).
  caf::reacts_to<phase_atom, daemon_info>>;

/// Loads the meshd type-id block into `cfg` (add_message_types), so that
/// every message above can be serialized (sent to another node). Part of
/// apply_scheduler_defaults(); call it on any other config that builds an
/// actor system for meshd's actors.
caf::actor_system_config& register_message_types(caf::actor_system_config& cfg);

} // namespace mesh

CAF_BEGIN_TYPE_ID_BLOCK(meshd, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(meshd, (mesh::causal_event))
  CAF_ADD_TYPE_ID(meshd, (mesh::inbound_event))
  CAF_ADD_TYPE_ID(meshd, (mesh::delivery))
  CAF_ADD_TYPE_ID(meshd, (mesh::log_entry))
  CAF_ADD_TYPE_ID(meshd, (mesh::daemon_stats))
  CAF_ADD_TYPE_ID(meshd, (mesh::daemon_info))
  CAF_ADD_TYPE_ID(meshd, (mesh::event_batch))
  CAF_ADD_TYPE_ID(meshd, (mesh::delivery_batch))
  CAF_ADD_TYPE_ID(meshd, (mesh::log_batch))
  CAF_ADD_TYPE_ID(meshd, (std::vector<mesh::causal_event>))
  CAF_ADD_TYPE_ID(meshd, (std::vector<mesh::inbound_event>))
  CAF_ADD_TYPE_ID(meshd, (std::vector<mesh::delivery>))
  CAF_ADD_TYPE_ID(meshd, (std::vector<mesh::log_entry>))
  CAF_ADD_TYPE_ID(meshd, (std::vector<mesh::daemon_info>))
  CAF_ADD_TYPE_ID(meshd, (mesh::spawn_spec))
  CAF_ADD_TYPE_ID(meshd, (std::vector<uint8_t>))
  CAF_ADD_TYPE_ID(meshd, (mesh::log_actor))
  CAF_ADD_TYPE_ID(meshd, (mesh::daemon_actor))
  CAF_ADD_TYPE_ID(meshd, (mesh::supervisor_actor))
  CAF_ADD_TYPE_ID(meshd, (mesh::log_range_request))
  CAF_ADD_TYPE_ID(meshd, (mesh::log_range))
  CAF_ADD_TYPE_ID(meshd, (mesh::log_pin))
CAF_END_TYPE_ID_BLOCK(meshd)
