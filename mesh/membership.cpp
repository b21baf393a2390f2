#include "mesh/membership.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

bool is_zero(const entity_id& id) {
  return std::all_of(id.begin(), id.end(), [](uint8_t b) {
    return b == 0;
  });
}

bool valid_address(const std::string& address) {
  return !address.empty() && address.size() <= membership::max_address_size;
}

// The id as logs print it: the first 16 hex digits are enough to find a
// node in `meshctl nodes`.
std::string short_id(const entity_id& id) {
  return to_hex(id).substr(0, 16);
}

uint64_t ms_between(membership::time_point from, membership::time_point to) {
  if (to <= from)
    return 0;
  return static_cast<uint64_t>(duration_cast<milliseconds>(to - from).count());
}

} // namespace

const char* to_string(heartbeat_outcome x) noexcept {
  switch (x) {
    case heartbeat_outcome::accepted: return "accepted";
    case heartbeat_outcome::own_id: return "own_id";
    case heartbeat_outcome::old_incarnation: return "old_incarnation";
    case heartbeat_outcome::rejected: return "rejected";
    case heartbeat_outcome::table_full: return "table_full";
  }
  return "unknown";
}

caf::error validate(const membership_options& opts) {
  using std::chrono::milliseconds;
  if (opts.heartbeat_interval <= milliseconds{0})
    return make_error(errc::invalid_argument,
                      "heartbeat interval must be positive");
  if (opts.suspect_after <= opts.heartbeat_interval)
    return make_error(errc::invalid_argument,
                      "suspect timeout ("
                        + std::to_string(opts.suspect_after.count())
                        + " ms) must exceed the heartbeat interval ("
                        + std::to_string(opts.heartbeat_interval.count())
                        + " ms)");
  if (opts.failure_timeout <= opts.suspect_after)
    return make_error(errc::invalid_argument,
                      "failure timeout ("
                        + std::to_string(opts.failure_timeout.count())
                        + " ms) must exceed the suspect timeout ("
                        + std::to_string(opts.suspect_after.count()) + " ms)");
  if (opts.rejoin_interval <= milliseconds{0})
    return make_error(errc::invalid_argument,
                      "rejoin interval must be positive");
  if (opts.probe_fanout > 64)
    return make_error(errc::invalid_argument,
                      "probe fanout " + std::to_string(opts.probe_fanout)
                        + " is above 64");
  return {};
}

caf::expected<membership> membership::make(node_record self,
                                           membership_options opts) {
  if (auto err = validate(opts))
    return err;
  if (is_zero(self.id))
    return make_error(errc::invalid_argument, "own node id is all zeros");
  if (!valid_address(self.address))
    return make_error(errc::invalid_argument,
                      "own address must be 1 to "
                        + std::to_string(max_address_size) + " bytes, got "
                        + std::to_string(self.address.size()));
  return membership{std::move(self), opts};
}

membership::membership(node_record self, membership_options opts)
  : self_(std::move(self)), opts_(opts) {}

// -- configuration ------------------------------------------------------------

bool membership::add_seed(std::string address) {
  if (!valid_address(address) || address == self_.address)
    return false;
  auto same = [&address](const seed& s) {
    return s.address == address;
  };
  if (std::any_of(seeds_.begin(), seeds_.end(), same))
    return false;
  seeds_.push_back(seed{std::move(address), std::nullopt, time_point{}});
  return true;
}

void membership::set_self_load(node_load load) {
  self_.load = load;
}

void membership::set_self_drained(bool drained) {
  self_.drained = drained;
}

void membership::set_self_capabilities(capabilities caps) {
  self_.caps = std::move(caps);
}

// -- state transitions --------------------------------------------------------

membership::time_point membership::down_at(const member& m) const {
  // A node becomes suspect no earlier than suspect_after into its silence,
  // and nothing moves last_heard while it stays suspect, so this is also at
  // least failure_timeout after it was last heard. Counting from the
  // suspicion rather than from last_heard matters when our own ticks were
  // late (this process was stopped or starved): every peer then looks
  // silent at once, and each still gets the time to be heard or probed
  // before it is declared down.
  return m.suspect_since + (opts_.failure_timeout - opts_.suspect_after);
}

void membership::set_state(member& m, node_state to, std::string why,
                           time_point now, membership_actions& out,
                           bool restarted) {
  if (m.state == to && !restarted)
    return;
  out.changes.push_back(state_change{m.node.id, m.node.address, m.state, to,
                                     m.node.incarnation, restarted,
                                     std::move(why)});
  m.state = to;
  switch (to) {
    case node_state::up:
      m.probes.clear();
      m.probes_asked = 0;
      break;
    case node_state::suspect:
      m.suspect_since = now;
      m.next_probe_round = now;
      m.probes_asked = 0;
      break;
    case node_state::down:
      m.probes.clear();
      m.next_rejoin = now + opts_.rejoin_interval;
      break;
  }
}

void membership::add_member(node_record rec, time_point now, std::string how,
                            membership_actions& out) {
  member m;
  m.node = std::move(rec);
  m.last_heard = now;
  m.next_rejoin = now + opts_.rejoin_interval;
  out.changes.push_back(state_change{m.node.id, m.node.address, std::nullopt,
                                     node_state::up, m.node.incarnation, false,
                                     std::move(how)});
  // Connect and greet at once, so the new node learns of us within one
  // round trip rather than one heartbeat interval.
  out.dials.push_back(dial_request{m.node.id, m.node.address});
  out.heartbeats.push_back(heartbeat_target{m.node.id, m.node.address});
  auto id = m.node.id;
  members_.emplace(id, std::move(m));
}

void membership::replace_incarnation(member& m, node_record rec, time_point now,
                                     std::string why, membership_actions& out) {
  m.node = std::move(rec);
  m.last_heard = now;
  m.probes.clear();
  // The old process's listener is gone with it: dial the new one.
  out.dials.push_back(dial_request{m.node.id, m.node.address});
  set_state(m, node_state::up, std::move(why), now, out, true);
}

// -- inputs -------------------------------------------------------------------

membership_actions membership::on_heartbeat(const heartbeat& hb, time_point now,
                                            heartbeat_outcome* outcome) {
  membership_actions out;
  auto result = [outcome](heartbeat_outcome x) {
    if (outcome != nullptr)
      *outcome = x;
  };
  const auto& from = hb.from;
  if (from.id == self_.id) {
    result(heartbeat_outcome::own_id);
    return out;
  }
  if (is_zero(from.id) || !valid_address(from.address)
      || hb.known.size() > max_gossip_entries) {
    result(heartbeat_outcome::rejected);
    return out;
  }
  auto i = members_.find(from.id);
  if (i == members_.end()) {
    if (members_.size() >= max_members) {
      result(heartbeat_outcome::table_full);
      return out;
    }
    add_member(from, now, "heard from it", out);
  } else {
    auto& m = i->second;
    if (from.incarnation < m.node.incarnation) {
      result(heartbeat_outcome::old_incarnation);
      return out;
    }
    if (from.incarnation > m.node.incarnation) {
      replace_incarnation(m, from, now,
                          "restarted: incarnation "
                            + std::to_string(m.node.incarnation) + " -> "
                            + std::to_string(from.incarnation),
                          out);
    } else {
      auto silent = ms_between(m.last_heard, now);
      auto was = m.state;
      m.node = from;
      m.last_heard = now;
      if (was != node_state::up)
        set_state(m, node_state::up,
                  "heard from it after " + std::to_string(silent)
                    + " ms of silence",
                  now, out);
      // A node we gave up on has most likely lost our link too.
      if (was == node_state::down)
        out.dials.push_back(dial_request{m.node.id, m.node.address});
    }
  }
  merge_gossip(hb, now, out);
  result(heartbeat_outcome::accepted);
  return out;
}

void membership::merge_gossip(const heartbeat& hb, time_point now,
                              membership_actions& out) {
  for (const auto& e : hb.known) {
    // Our own entry is ours alone; the sender's own entry is its `from`
    // record, which is authoritative.
    if (e.id == self_.id || e.id == hb.from.id || is_zero(e.id)
        || !valid_address(e.address))
      continue;
    auto i = members_.find(e.id);
    if (i == members_.end()) {
      if (members_.size() >= max_members)
        continue;
      node_record rec;
      rec.id = e.id;
      rec.address = e.address;
      rec.incarnation = e.incarnation;
      add_member(std::move(rec), now, "gossip from " + short_id(hb.from.id),
                 out);
      continue;
    }
    auto& m = i->second;
    if (e.incarnation <= m.node.incarnation)
      continue;
    // A restart we learn of second-hand. Capabilities and load described
    // the previous process: they arrive again with its first heartbeat.
    node_record rec;
    rec.id = e.id;
    rec.address = e.address;
    rec.incarnation = e.incarnation;
    replace_incarnation(m, std::move(rec), now,
                        "restarted (gossip from " + short_id(hb.from.id)
                          + "): incarnation "
                          + std::to_string(m.node.incarnation) + " -> "
                          + std::to_string(e.incarnation),
                        out);
  }
}

membership_actions membership::on_probe_result(const entity_id& target,
                                               const entity_id& helper,
                                               bool reached, time_point now) {
  membership_actions out;
  auto i = members_.find(target);
  if (i == members_.end())
    return out;
  auto& m = i->second;
  auto p = m.probes.find(helper);
  if (p == m.probes.end())
    return out;
  auto deadline = p->second;
  m.probes.erase(p);
  if (!reached || now > deadline)
    return out;
  auto silent = ms_between(m.last_heard, now);
  m.last_heard = now;
  set_state(m, node_state::up,
            "indirect probe via " + short_id(helper) + " reached it after "
              + std::to_string(silent) + " ms of silence",
            now, out);
  return out;
}

membership_actions membership::on_link_lost(const entity_id& id,
                                            time_point now) {
  membership_actions out;
  auto i = members_.find(id);
  if (i == members_.end())
    return out;
  auto& m = i->second;
  m.link_lost = true;
  m.next_rejoin = now + opts_.rejoin_interval;
  out.dials.push_back(dial_request{m.node.id, m.node.address});
  return out;
}

membership_actions membership::on_link_lost(const std::string& address,
                                            time_point now) {
  if (const auto* m = by_address(address))
    return on_link_lost(m->node.id, now);
  membership_actions out;
  for (auto& s : seeds_) {
    if (s.address != address)
      continue;
    s.next_attempt = now + opts_.rejoin_interval;
    out.dials.push_back(dial_request{s.id, s.address});
  }
  return out;
}

membership_actions membership::on_link_up(const std::string& address,
                                          const entity_id& id) {
  membership_actions out;
  // A seed that turns out to be ourselves (another spelling of our own
  // address) is bound too, so it is not redialed forever.
  for (auto& s : seeds_)
    if (s.address == address)
      s.id = id;
  if (id == self_.id)
    return out;
  auto i = members_.find(id);
  if (i != members_.end())
    i->second.link_lost = false;
  // Greet at once: a joining node (or one coming back) should not wait a
  // heartbeat interval, or a rejoin interval, to be known.
  out.heartbeats.push_back(heartbeat_target{id, address});
  return out;
}

// -- time ---------------------------------------------------------------------

membership_actions membership::tick(time_point now) {
  membership_actions out;
  bool heartbeat_due = !next_heartbeat_ || now >= *next_heartbeat_;
  if (heartbeat_due)
    next_heartbeat_ = now + opts_.heartbeat_interval;
  for (auto& kv : members_)
    tick_member(kv.second, now, heartbeat_due, out);
  tick_seeds(now, out);
  return out;
}

void membership::tick_member(member& m, time_point now, bool heartbeat_due,
                             membership_actions& out) {
  // Answers nobody will wait for any more.
  for (auto p = m.probes.begin(); p != m.probes.end();)
    p = p->second < now ? m.probes.erase(p) : std::next(p);
  auto silent = ms_between(m.last_heard, now);
  if (m.state == node_state::up && now - m.last_heard >= opts_.suspect_after)
    set_state(m, node_state::suspect,
              "silent for " + std::to_string(silent) + " ms", now, out);
  if (m.state == node_state::suspect) {
    if (now >= down_at(m)) {
      auto why = "silent for " + std::to_string(silent) + " ms, "
                 + (m.probes_asked == 0
                      ? std::string{"no other node to probe it through"}
                      : std::to_string(m.probes_asked)
                          + " indirect probes, none reached it");
      set_state(m, node_state::down, std::move(why), now, out);
    } else if (now >= m.next_probe_round) {
      probe_round(m, now, out);
    }
  }
  if (m.state == node_state::down) {
    if (now >= m.next_rejoin) {
      m.next_rejoin = now + opts_.rejoin_interval;
      out.heartbeats.push_back(heartbeat_target{m.node.id, m.node.address});
      out.dials.push_back(dial_request{m.node.id, m.node.address});
    }
    return;
  }
  if (heartbeat_due)
    out.heartbeats.push_back(heartbeat_target{m.node.id, m.node.address});
  if (m.link_lost && now >= m.next_rejoin) {
    m.next_rejoin = now + opts_.rejoin_interval;
    out.dials.push_back(dial_request{m.node.id, m.node.address});
  }
}

void membership::probe_round(member& m, time_point now,
                             membership_actions& out) {
  m.next_probe_round = now + opts_.heartbeat_interval;
  std::vector<const member*> helpers;
  for (const auto& kv : members_) {
    const auto& h = kv.second;
    // A helper must be up and reachable from here, or the request is lost.
    if (h.node.id != m.node.id && h.state == node_state::up && !h.link_lost)
      helpers.push_back(&h);
  }
  if (helpers.empty())
    return;
  auto n = std::min<size_t>(opts_.probe_fanout, helpers.size());
  auto deadline = down_at(m);
  for (size_t k = 0; k < n; ++k) {
    const auto* h = helpers[(probe_cursor_ + k) % helpers.size()];
    m.probes[h->node.id] = deadline;
    out.probes.push_back(probe_request{h->node.id, h->node.address, m.node.id,
                                       m.node.address, deadline});
  }
  // Rotate, so a second round (or another suspect) asks other helpers.
  probe_cursor_ += n;
  m.probes_asked += static_cast<uint32_t>(n);
}

bool membership::seed_satisfied(const seed& s) const {
  if (s.id && *s.id == self_.id)
    return true;
  for (const auto& kv : members_) {
    const auto& m = kv.second;
    // The member's own redials cover its address, down or not.
    if (m.node.address == s.address)
      return true;
    if (s.id && *s.id == m.node.id && m.state != node_state::down)
      return true;
  }
  return false;
}

void membership::tick_seeds(time_point now, membership_actions& out) {
  for (auto& s : seeds_) {
    if (seed_satisfied(s) || now < s.next_attempt)
      continue;
    s.next_attempt = now + opts_.rejoin_interval;
    out.dials.push_back(dial_request{s.id, s.address});
    out.heartbeats.push_back(heartbeat_target{s.id, s.address});
  }
}

// -- outputs and queries ------------------------------------------------------

heartbeat membership::make_heartbeat() const {
  heartbeat hb;
  hb.from = self_;
  hb.known.reserve(members_.size());
  for (const auto& kv : members_) {
    const auto& m = kv.second;
    if (m.state != node_state::down)
      hb.known.push_back(
        gossip_entry{m.node.id, m.node.address, m.node.incarnation});
  }
  return hb;
}

member_info membership::info(const member& m, time_point now) const {
  return member_info{m.node, m.state, ms_between(m.last_heard, now)};
}

member_info membership::self_info() const {
  return member_info{self_, node_state::up, 0};
}

std::vector<member_info> membership::members(time_point now) const {
  std::vector<member_info> result;
  result.reserve(members_.size() + 1);
  result.push_back(self_info());
  for (const auto& kv : members_)
    result.push_back(info(kv.second, now));
  std::sort(result.begin(), result.end(),
            [](const member_info& a, const member_info& b) {
              return a.node.id < b.node.id;
            });
  return result;
}

std::optional<member_info> membership::find(const entity_id& id,
                                            time_point now) const {
  if (id == self_.id)
    return self_info();
  auto i = members_.find(id);
  if (i == members_.end())
    return std::nullopt;
  return info(i->second, now);
}

std::optional<member_info> membership::find(const std::string& address,
                                            time_point now) const {
  if (address == self_.address)
    return self_info();
  const auto* m = by_address(address);
  if (m == nullptr)
    return std::nullopt;
  return info(*m, now);
}

const membership::member*
membership::by_address(const std::string& address) const {
  // Two ids may share an address (a node re-created with a new key where an
  // old one lived): prefer the one that is not down.
  const member* found = nullptr;
  for (const auto& kv : members_) {
    const auto& m = kv.second;
    if (m.node.address != address)
      continue;
    if (m.state != node_state::down)
      return &m;
    if (found == nullptr)
      found = &m;
  }
  return found;
}

std::vector<node_record> membership::up_nodes() const {
  std::vector<node_record> result;
  result.push_back(self_);
  for (const auto& kv : members_)
    if (kv.second.state == node_state::up)
      result.push_back(kv.second.node);
  std::sort(result.begin(), result.end(),
            [](const node_record& a, const node_record& b) {
              return a.id < b.id;
            });
  return result;
}

// -- incarnation --------------------------------------------------------------

uint64_t next_incarnation(uint64_t previous_persisted, uint64_t now_ns) {
  if (previous_persisted == std::numeric_limits<uint64_t>::max())
    return previous_persisted;
  return std::max(now_ns, previous_persisted + 1);
}

uint64_t next_incarnation(uint64_t previous_persisted) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  return next_incarnation(previous_persisted,
                          ns > 0 ? static_cast<uint64_t>(ns) : 0);
}

namespace {

constexpr const char* incarnation_file = "/incarnation";
// 20 digits and a newline, with room to report a longer file as damaged.
constexpr size_t incarnation_max_size = 64;

} // namespace

caf::expected<uint64_t> load_incarnation(file_system& fs,
                                         const std::string& dir) {
  auto path = dir + incarnation_file;
  auto data = read_small_file(fs, path, incarnation_max_size);
  if (!data) {
    if (is(data.error(), errc::not_found))
      return uint64_t{0};
    return std::move(data.error());
  }
  auto bad = [&path](const std::string& what) {
    return make_error(errc::corrupt_data, path + ": " + what
                                            + ", expected a positive decimal "
                                            + "number and a newline");
  };
  std::string_view text{reinterpret_cast<const char*>(data->data()),
                        data->size()};
  if (!text.empty() && text.back() == '\n')
    text.remove_suffix(1);
  if (text.empty())
    return bad("empty");
  uint64_t value = 0;
  constexpr auto max = std::numeric_limits<uint64_t>::max();
  for (char c : text) {
    if (c < '0' || c > '9')
      return bad("not a decimal digit: byte "
                 + std::to_string(static_cast<unsigned char>(c)));
    auto digit = static_cast<uint64_t>(c - '0');
    if (value > (max - digit) / 10)
      return bad("number does not fit 64 bits");
    value = value * 10 + digit;
  }
  if (value == 0)
    return bad("0, which is never written");
  return value;
}

caf::error store_incarnation(file_system& fs, const std::string& dir,
                             uint64_t value) {
  if (value == 0)
    return make_error(errc::invalid_argument, "incarnation 0 is never stored");
  auto text = std::to_string(value) + "\n";
  return write_file_atomic(fs, dir + incarnation_file, bytes_view{text}, 0644);
}

} // namespace mesh
