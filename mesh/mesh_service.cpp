#include "mesh/mesh_service.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "actors/daemon_info.hpp"
#include "actors/messages.hpp"
#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "mesh/capabilities.hpp"
#include "mesh/directory.hpp"
#include "mesh/gateway.hpp"
#include "mesh/placement.hpp"

namespace {

struct mesh_tick {};
struct mesh_reconcile {};

// A dialing thread's result.
struct mesh_dialed {
  std::string address;
  caf::expected<mesh::dialed_link> result;
};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh_tick)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh_reconcile)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh_dialed)

namespace mesh {

namespace {

using namespace std::chrono;
using control::wire_bytes;

std::string short_id(const entity_id& id) {
  return to_hex(id).substr(0, 12);
}

std::string describe_node(const entity_id& id, const std::string& address) {
  return short_id(id) + " (" + (address.empty() ? "address unknown" : address)
         + ")";
}

class mesh_actor : public caf::event_based_actor {
public:
  mesh_actor(caf::actor_config& cfg, runtime* rt, mesh_service_options opts,
             membership* members)
    : caf::event_based_actor(cfg),
      rt_(*rt),
      opts_(std::move(opts)),
      members_(std::move(*members)) {
    for (const auto& s : opts_.seeds)
      members_.add_seed(s);
  }

  const char* name() const override {
    return "mesh.service";
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg& dm) {
      link_down(dm);
    });
    set_default_handler(caf::drop);
    send(this, mesh_reconcile{});
    send(this, mesh_tick{});
    return {
      [this](mesh_tick) {
        tick();
        delayed_send(this, opts_.tick, mesh_tick{});
      },
      [this](mesh_reconcile) {
        reconcile();
        delayed_send(this, opts_.reconcile, mesh_reconcile{});
      },
      [this](mesh_dialed& d) {
        dialed(std::move(d));
      },
      [this](mesh_heartbeat_in& in) -> caf::result<heartbeat> {
        if (in.beat.from.id != in.peer)
          return make_error(errc::unauthenticated,
                            "a heartbeat for node " + short_id(in.beat.from.id)
                              + " came over a link authenticated as "
                              + short_id(in.peer));
        heard(in.beat);
        return own_heartbeat();
      },
      [this](mesh_probe_in& in) -> caf::result<bool> {
        return probe_for_peer(in.probe);
      },
      [this](
        mesh_directory_in& in) -> caf::result<std::vector<directory_entry>> {
        apply_remote(in.req.entries);
        if (!in.req.want_table)
          return std::vector<directory_entry>{};
        if (in.req.bucket_digests.empty())
          return all_entries();
        // Anti-entropy: only the buckets where the tables differ.
        auto differ = dir_.differing_buckets(in.req.bucket_digests);
        if (!differ)
          return std::move(differ.error());
        return or_log(dir_.entries_in(*differ), "bucket listing");
      },
      [this](mesh_nodes) -> std::vector<member_info> {
        return members_.members(steady_clock::now());
      },
      [this](mesh_route& r) -> mesh_route_result {
        return route(r.origin);
      },
      [this](mesh_place& p) -> caf::result<std::vector<mesh_share>> {
        return place_deploy(p.req);
      },
      [this](mesh_peers) -> mesh_peer_list {
        return peer_list();
      },
      [this](mesh_admit& a) -> caf::result<bool> {
        for (const auto& r : kind_filter(a.kind)) {
          auto why = check(r, opts_.self.caps);
          if (!why.empty())
            return make_error(errc::no_target_available,
                              "node "
                                + describe_node(opts_.self.id,
                                                opts_.self.address)
                                + " cannot run kind " + a.kind
                                + " (its own requirements): " + why);
        }
        return true;
      },
      [this](mesh_local_change& c) {
        local_change(std::move(c.entries));
      },
    };
  }

private:
  struct peer_link {
    caf::actor link;
    std::string address;
  };

  // -- membership ------------------------------------------------------------

  heartbeat own_heartbeat() {
    auto hb = members_.make_heartbeat();
    hb.directory_digest = digest();
    hb.directory_size = or_log(dir_.size(), "size", size_t{0});
    return hb;
  }

  // The embedded directory's calls cannot fail (they are in memory); the
  // interface allows it for remote backends. A failure is logged and read
  // as "nothing".
  template<class T>
  T or_log(caf::expected<T> x, const char* what, T fallback = T{}) {
    if (x)
      return std::move(*x);
    spdlog::error("mesh: directory {} failed: {}", what, describe(x.error()));
    return fallback;
  }

  uint64_t digest() {
    return or_log(dir_.digest(), "digest", uint64_t{0});
  }

  std::optional<directory_entry> lookup(uint64_t origin) {
    return or_log(dir_.lookup(origin), "lookup");
  }

  std::vector<directory_entry> all_entries() {
    return or_log(dir_.entries(), "listing");
  }

  std::vector<directory_entry> entries_on(const entity_id& node) {
    return or_log(dir_.entries_on(node), "listing");
  }

  void heard(const heartbeat& hb) {
    if (hb.from.id == opts_.self.id)
      return;
    carry_out(members_.on_heartbeat(hb, steady_clock::now()));
    if (hb.directory_digest != digest())
      maybe_sync(hb.from.id);
  }

  void tick() {
    carry_out(members_.tick(steady_clock::now()));
  }

  // Does what membership asked for.
  void carry_out(const membership_actions& acts) {
    for (const auto& ch : acts.changes)
      log_change(ch);
    for (const auto& d : acts.dials)
      dial(d.address);
    for (const auto& t : acts.heartbeats)
      send_heartbeat(t.id, t.address);
    for (const auto& p : acts.probes)
      ask_probe(p);
  }

  void log_change(const state_change& ch) {
    auto text = "node " + describe_node(ch.id, ch.address) + " is "
                + to_string(ch.to) + " (was "
                + (ch.from ? to_string(*ch.from) : "unknown") + ", incarnation "
                + std::to_string(ch.incarnation) + "): " + ch.why;
    if (ch.to == node_state::up)
      spdlog::info("{}", text);
    else
      spdlog::warn("{}", text);
    if (ch.to == node_state::down) {
      // Its link may be half-dead (SIGSTOP): drop it, so that requests
      // routed there fail at once and the next heartbeat dials anew.
      drop_link(ch.id);
    }
  }

  // Sends our heartbeat to `id` (or, for a seed not yet known, to
  // `address`); the answer is the peer's heartbeat.
  void send_heartbeat(const std::optional<entity_id>& id,
                      const std::string& address) {
    caf::actor link;
    if (id) {
      if (auto it = links_.find(*id); it != links_.end())
        link = it->second.link;
    } else if (auto it = by_address_.find(address); it != by_address_.end()) {
      if (auto l = links_.find(it->second); l != links_.end())
        link = l->second.link;
    }
    if (!link) {
      dial(address);
      return;
    }
    auto deadline = opts_.membership.heartbeat_interval * 2;
    call<control::heartbeat_response>(
      link, deadline, control::heartbeat_request{own_heartbeat()},
      [this](control::heartbeat_response& r) {
        heard(r.beat);
      },
      [](const caf::error&) {
        // Silence is membership's to judge.
      });
  }

  void ask_probe(const probe_request& p) {
    auto it = links_.find(p.helper);
    if (it == links_.end()) {
      carry_out(members_.on_probe_result(p.target, p.helper, false,
                                         steady_clock::now()));
      return;
    }
    auto left = duration_cast<milliseconds>(p.deadline - steady_clock::now());
    auto timeout = std::max(left, milliseconds{10});
    control::probe_request req{p.target, p.target_address,
                               static_cast<uint32_t>(timeout.count())};
    call<control::probe_response>(
      it->second.link, timeout + milliseconds{200}, req,
      [this, p](control::probe_response& r) {
        carry_out(members_.on_probe_result(p.target, p.helper, r.reached,
                                           steady_clock::now()));
      },
      [this, p](const caf::error&) {
        carry_out(members_.on_probe_result(p.target, p.helper, false,
                                           steady_clock::now()));
      });
  }

  // A peer asks us to reach `target`: one heartbeat exchange within its
  // deadline.
  caf::result<bool> probe_for_peer(const control::probe_request& p) {
    auto it = links_.find(p.target);
    if (it == links_.end()) {
      if (!p.address.empty())
        dial(p.address);
      return false;
    }
    auto rp = make_response_promise<bool>();
    auto timeout = milliseconds{std::clamp<uint32_t>(p.timeout_ms, 10, 10000)};
    call<control::heartbeat_response>(
      it->second.link, timeout, control::heartbeat_request{own_heartbeat()},
      [this, rp](control::heartbeat_response& r) mutable {
        heard(r.beat);
        rp.deliver(true);
      },
      [rp](const caf::error&) mutable {
        rp.deliver(false);
      });
    return rp;
  }

  // -- links -----------------------------------------------------------------

  void dial(const std::string& address) {
    if (address.empty() || address == opts_.self.address
        || dialing_.count(address) > 0 || !opts_.dial)
      return;
    if (auto it = by_address_.find(address);
        it != by_address_.end() && links_.count(it->second) > 0)
      return;
    dialing_.insert(address);
    auto dialer = opts_.dial;
    auto me = caf::actor_cast<caf::actor>(this);
    system().spawn([dialer, address, me](caf::blocking_actor* self) {
      auto result = dialer(address);
      if (result) {
        // A link lives no longer than the mesh actor: the actor system
        // waits for every actor at shutdown, and an orphaned link would
        // hold it forever. On a mesh actor that is already gone this runs
        // at once.
        me->attach_functor([link = result->link] {
          caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
        });
      }
      self->send(me, mesh_dialed{address, std::move(result)});
    });
  }

  void dialed(mesh_dialed d) {
    dialing_.erase(d.address);
    if (!d.result) {
      spdlog::debug("mesh: cannot reach {}: {}", d.address,
                    describe(d.result.error()));
      return;
    }
    auto& l = *d.result;
    if (l.peer == opts_.self.id) {
      // A seed list that names this node: nothing to talk to.
      anon_send_exit(l.link, caf::exit_reason::user_shutdown);
      return;
    }
    if (auto it = links_.find(l.peer); it != links_.end() && it->second.link) {
      // Dialed twice (seed and gossip); keep the first.
      anon_send_exit(l.link, caf::exit_reason::user_shutdown);
      by_address_[d.address] = l.peer;
      return;
    }
    monitor(l.link);
    links_[l.peer] = peer_link{l.link, d.address};
    by_address_[d.address] = l.peer;
    // Membership binds the address to the id and asks for a heartbeat at
    // once: the peer learns us, we learn it, in one round trip.
    carry_out(members_.on_link_up(d.address, l.peer));
  }

  void drop_link(const entity_id& id) {
    auto it = links_.find(id);
    if (it == links_.end())
      return;
    demonitor(it->second.link);
    anon_send_exit(it->second.link, caf::exit_reason::user_shutdown);
    links_.erase(it);
  }

  void link_down(const caf::down_msg& dm) {
    for (auto it = links_.begin(); it != links_.end(); ++it) {
      if (it->second.link.address() == dm.source) {
        spdlog::debug("mesh: link to {} closed: {}",
                      describe_node(it->first, it->second.address),
                      describe(dm.reason));
        auto id = it->first;
        links_.erase(it);
        carry_out(members_.on_link_lost(id, steady_clock::now()));
        return;
      }
    }
  }

  // One request to a peer with a deadline; the answer decoded. A peer's
  // error response arrives as err().
  template<class Response, class Request, class Ok, class Err>
  void call(const caf::actor& link, milliseconds deadline, Request req, Ok ok,
            Err err) {
    auto bytes = control::encode(control::request{std::move(req)}, ++next_id_);
    request(link, deadline, request_atom::value, std::move(bytes))
      .then(
        [ok, err](wire_bytes& res) mutable {
          auto frame = control::decode_response(res);
          if (!frame)
            return err(frame.error());
          if (auto* e = std::get_if<control::error_response>(&frame->body))
            return err(control::to_error(*e));
          auto* r = std::get_if<Response>(&frame->body);
          if (r == nullptr)
            return err(make_error(errc::corrupt_data,
                                  "a peer answered with another type"));
          ok(*r);
        },
        [err](caf::error& e) mutable {
          err(e);
        });
  }

  // -- directory -------------------------------------------------------------

  // Pulls the entries of the buckets where our table and `peer`'s differ,
  // when their digests differ; at most one exchange in flight per peer,
  // and not more often than every 2 s.
  void maybe_sync(const entity_id& peer) {
    auto now = steady_clock::now();
    auto& last = last_sync_[peer];
    if (syncing_.count(peer) > 0 || now - last < seconds{2})
      return;
    auto it = links_.find(peer);
    if (it == links_.end())
      return;
    last = now;
    syncing_.insert(peer);
    // Our bucket digests (2 KiB); the peer answers the entries of the
    // buckets that differ. What we hold that it lacks, it pulls the same
    // way when our heartbeat's digest differs from its own.
    control::directory_request req{{}, true, dir_.bucket_digests()};
    call<control::directory_response>(
      it->second.link, opts_.peer_timeout, std::move(req),
      [this, peer](control::directory_response& r) {
        syncing_.erase(peer);
        apply_remote(r.entries);
      },
      [this, peer](const caf::error& e) {
        syncing_.erase(peer);
        spdlog::debug("mesh: directory exchange with {} failed: {}",
                      short_id(peer), describe(e));
      });
  }

  void apply_remote(const std::vector<directory_entry>& entries) {
    auto applied = dir_.merge(entries);
    if (!applied)
      spdlog::warn("mesh: refused directory updates from a peer: {}",
                   describe(applied.error()));
    else if (*applied > 0)
      spdlog::debug("mesh: directory took {} update(s) from a peer", *applied);
  }

  // Publishes entries this node made and pushes the ones applied to every
  // peer it has a link to (anti-entropy repairs those it misses).
  void publish_local(std::vector<directory_entry> entries) {
    std::vector<directory_entry> applied;
    for (auto& e : entries) {
      auto ok = dir_.publish(e);
      if (ok && *ok)
        applied.push_back(std::move(e));
    }
    if (applied.empty())
      return;
    auto now = steady_clock::now();
    for (auto& [id, l] : links_) {
      auto m = members_.find(id, now);
      if (!m || m->state == node_state::down)
        continue;
      call<control::directory_response>(
        l.link, opts_.peer_timeout,
        control::directory_request{applied, false, {}},
        [](control::directory_response&) {}, [](const caf::error&) {});
    }
  }

  void local_change(std::vector<directory_entry> entries) {
    for (auto& e : entries) {
      e.node = opts_.self.id;
      if (e.stopped) {
        // The gateway knows the origin, the directory the epoch.
        auto known = lookup(e.origin);
        if (!known || known->node != opts_.self.id)
          continue;
        e.epoch = known->epoch;
        e.kind = known->kind;
      }
    }
    publish_local(std::move(entries));
  }

  // Lists this node's daemons: publishes any the directory does not show
  // here at their epoch (recovered at start, spawned by a path that did
  // not tell us), tombstones entries for daemons gone from here, and
  // refreshes the load the heartbeats report.
  void reconcile() {
    if (reconciling_)
      return;
    reconciling_ = true;
    request(rt_.supervisor(), opts_.peer_timeout, list_atom::value)
      .then(
        [this](std::vector<daemon_info>& infos) {
          reconciling_ = false;
          std::vector<directory_entry> updates;
          std::set<uint64_t> here;
          uint32_t count = 0;
          for (const auto& d : infos) {
            if (d.phase == daemon_phase::stopped
                || d.phase == daemon_phase::standby)
              continue;
            ++count;
            here.insert(d.origin_hash);
            auto known = lookup(d.origin_hash);
            if (!known || known->node != opts_.self.id || known->epoch < d.epoch
                || known->stopped)
              updates.push_back(directory_entry{d.origin_hash, opts_.self.id,
                                                d.epoch, d.kind, false});
          }
          for (auto e : entries_on(opts_.self.id))
            if (!e.stopped && here.count(e.origin) == 0) {
              e.stopped = true;
              updates.push_back(std::move(e));
            }
          node_load load;
          load.daemons = count;
          load.saturation = current_saturation(opts_.self.caps.cores);
          members_.set_self_load(load);
          publish_local(std::move(updates));
        },
        [this](caf::error& e) {
          reconciling_ = false;
          spdlog::debug("mesh: cannot list local daemons: {}", describe(e));
        });
  }

  // -- routing and placement -------------------------------------------------

  mesh_route_result route(uint64_t origin) {
    mesh_route_result out;
    auto e = lookup(origin);
    if (!e || e->stopped)
      return out;
    out.entry = *e;
    if (e->node == opts_.self.id) {
      out.what = mesh_route_result::where::local;
      out.address = opts_.self.address;
      return out;
    }
    auto m = members_.find(e->node, steady_clock::now());
    if (!m || m->state == node_state::down) {
      out.what = mesh_route_result::where::unavailable;
      out.address = m ? m->node.address : std::string{};
      return out;
    }
    out.what = mesh_route_result::where::remote;
    out.address = m->node.address;
    if (auto it = links_.find(e->node); it != links_.end())
      out.link = it->second.link;
    else
      dial(m->node.address);
    return out;
  }

  caf::expected<std::vector<mesh_share>>
  place_deploy(const control::deploy_request& req) {
    auto now = steady_clock::now();
    auto filter = req.requirements;
    // The kind's own requirements, when this node has the kind (every node
    // with its plugin states the same ones; a node that receives a share
    // checks them again against itself before it spawns).
    auto own = kind_filter(req.kind);
    filter.insert(filter.end(), own.begin(), own.end());
    auto plan = place(req.kind, req.count, filter, members_.members(now),
                      req.on_node);
    if (!plan)
      return std::move(plan.error());
    std::vector<mesh_share> out;
    for (const auto& [node, count] : *plan) {
      mesh_share s;
      s.node = node;
      s.count = count;
      if (node == opts_.self.id) {
        s.address = opts_.self.address;
      } else {
        auto m = members_.find(node, now);
        s.address = m ? m->node.address : std::string{};
        auto it = links_.find(node);
        if (it == links_.end())
          return make_error(errc::target_unavailable,
                            "placement chose node "
                              + describe_node(node, s.address)
                              + " but this node has no link to it yet; "
                                "retry in a moment");
        s.link = it->second.link;
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  std::vector<requirement> kind_filter(const std::string& kind) {
    if (auto it = kind_filters_.find(kind); it != kind_filters_.end())
      return it->second;
    auto kinds = rt_.kinds();
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      return {};
    auto f = rt_.kind_requirements(kind);
    if (!f) {
      spdlog::warn("mesh: requirements of kind {}: {}", kind,
                   describe(f.error()));
      return {};
    }
    auto reqs = requirements_of(*f);
    kind_filters_.emplace(kind, reqs);
    return reqs;
  }

  mesh_peer_list peer_list() {
    mesh_peer_list out;
    for (const auto& m : members_.members(steady_clock::now())) {
      if (m.node.id == opts_.self.id)
        continue;
      mesh_peer p;
      p.id = m.node.id;
      p.address = m.node.address;
      p.state = m.state;
      if (auto it = links_.find(m.node.id);
          it != links_.end() && m.state != node_state::down)
        p.link = it->second.link;
      p.entries = entries_on(m.node.id);
      out.peers.push_back(std::move(p));
    }
    return out;
  }

  runtime& rt_;
  mesh_service_options opts_;
  membership members_;
  embedded_directory dir_;
  std::unordered_map<entity_id, peer_link, entity_id_hash> links_;
  std::map<std::string, entity_id> by_address_;
  std::set<std::string> dialing_;
  std::set<entity_id> syncing_;
  std::map<entity_id, steady_clock::time_point> last_sync_;
  bool reconciling_ = false;
  uint64_t next_id_ = 0;
  std::map<std::string, std::vector<requirement>> kind_filters_;
};

} // namespace

caf::expected<caf::actor> spawn_mesh_service(caf::actor_system& sys,
                                             runtime& rt,
                                             mesh_service_options opts) {
  auto members = membership::make(opts.self, opts.membership);
  if (!members)
    return std::move(members.error());
  return sys.spawn<mesh_actor, caf::detached>(&rt, std::move(opts), &*members);
}

} // namespace mesh
