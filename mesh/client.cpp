#include "mesh/client.hpp"

#include <deque>
#include <map>
#include <unordered_map>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "base/errc.hpp"
#include "identity/key_file.hpp"
#include "mesh/client_connection_internal.hpp"
#include "mesh/middleman_defaults.hpp"
#include "mesh/psk.hpp"
#include "persistence/nonce_file.hpp"

namespace mesh {

using namespace mesh::control;

namespace {

// Whether request type T addresses one daemon (has `daemon_id`): those
// requests are routed.
template<class T, class = void>
struct has_daemon_id : std::false_type {};

template<class T>
struct has_daemon_id<T, std::void_t<decltype(std::declval<T>().daemon_id)>>
  : std::true_type {};

std::optional<uint64_t> addressed_daemon(const request& req) {
  return std::visit(
    [](const auto& x) -> std::optional<uint64_t> {
      using T = std::decay_t<decltype(x)>;
      if constexpr (has_daemon_id<T>::value)
        return x.daemon_id;
      else
        return std::nullopt;
    },
    req);
}

// describe() without the code's name in front: for messages that wrap an
// error and keep its code.
std::string words_of(const caf::error& err) {
  auto text = describe(err);
  auto code = code_of(err);
  if (static_cast<int>(code) == 0)
    return text;
  auto prefix = std::string{to_string(code)} + ": ";
  if (text.rfind(prefix, 0) == 0)
    text.erase(0, prefix.size());
  return text;
}

// The answer of type T, or the error it stands for.
template<class T>
caf::expected<T> expect(caf::expected<response> res, const char* what,
                        const std::string& address) {
  if (!res)
    return std::move(res.error());
  if (auto* err = std::get_if<error_response>(&*res))
    return to_error(*err);
  if (auto* x = std::get_if<T>(&*res))
    return std::move(*x);
  return make_error(errc::corrupt_data,
                    address + " answered a " + what
                      + " request with another response type");
}

} // namespace

// -- client -------------------------------------------------------------------

struct client::impl {
  client_options opts;
  // The actor system, when the client brought its own.
  std::unique_ptr<caf::actor_system_config> own_cfg;
  std::unique_ptr<caf::actor_system> own_sys;
  caf::actor_system* sys = nullptr;
  std::string home;
  // Open connections by address. Small: the nodes the client's daemons
  // live on.
  std::map<std::string, std::unique_ptr<client_detail::connection>> pool;
  // daemon -> the node that last said it runs it.
  std::unordered_map<uint64_t, std::string> routes;

  static constexpr size_t max_pool = 16;

  caf::expected<client_detail::connection*> conn(const std::string& address) {
    auto it = pool.find(address);
    if (it != pool.end() && !it->second->gone())
      return it->second.get();
    if (it != pool.end())
      pool.erase(it);
    auto creds = credentials();
    if (!creds)
      return std::move(creds.error());
    auto c = client_detail::connection::open(*sys, address, opts.timeout,
                                             opts.speaks, **creds);
    if (!c)
      return std::move(c.error());
    (*c)->set_route(opts.follow_moved ? control::route_mode::redirect
                                      : control::route_mode::forward);
    if (pool.size() >= max_pool) {
      // Forget a connection nothing is waiting on; never the home node's.
      for (auto i = pool.begin(); i != pool.end(); ++i)
        if (i->first != home && i->second->in_flight() == 0) {
          pool.erase(i);
          break;
        }
    }
    auto* raw = c->get();
    pool.emplace(address, std::move(*c));
    return raw;
  }

  // The link credentials, loaded once: opts.link, else the files of
  // opts.credentials, else the open PSK with a fresh key.
  caf::expected<std::shared_ptr<const link_credentials>> credentials() {
    if (opts.link)
      return opts.link;
    const auto& c = opts.credentials;
    auto the_psk = psk::open();
    if (!c.psk_file.empty()) {
      auto loaded = load_psk_file(c.psk_file);
      if (!loaded)
        return std::move(loaded.error());
      the_psk = std::move(*loaded);
    }
    auto key = c.key_file.empty() ? caf::expected<keypair>{keypair::generate()}
                                  : load_or_create_key_file(c.key_file);
    if (!key)
      return std::move(key.error());
    opts.link = std::make_shared<const link_credentials>(
      link_credentials{std::move(the_psk), std::move(*key), std::nullopt});
    return opts.link;
  }

  // One request, routed: returns the final answer (moved is followed when
  // the options say so) and the address that gave it.
  caf::expected<response> routed(const request& req) {
    auto daemon = addressed_daemon(req);
    std::string addr = home;
    bool from_cache = false;
    if (daemon) {
      if (auto it = routes.find(*daemon); it != routes.end()) {
        addr = it->second;
        from_cache = true;
      }
    }
    std::string path = addr;
    for (int hops = 0;; ++hops) {
      auto c = conn(addr);
      if (!c) {
        if (from_cache) {
          // The cached node is gone; the home node knows where the
          // daemon is now (or that its node is down).
          routes.erase(*daemon);
          addr = home;
          from_cache = false;
          path += " -> " + addr;
          continue;
        }
        return std::move(c.error());
      }
      auto res = (*c)->call(req);
      if (!res)
        return res;
      if (auto* err = std::get_if<error_response>(&*res);
          err != nullptr && from_cache && err->code == errc::daemon_not_found) {
        // A stale route: the daemon left that node, which forgot it.
        routes.erase(*daemon);
        addr = home;
        from_cache = false;
        path += " -> " + addr;
        continue;
      }
      auto* mv = std::get_if<moved_response>(&*res);
      if (mv == nullptr || !daemon)
        return res;
      if (!opts.follow_moved)
        return make_error(errc::moved, "daemon " + hex_u64(*daemon)
                                         + " lives on node " + mv->node
                                         + " (epoch "
                                         + std::to_string(mv->epoch) + ")");
      path += " -> " + mv->node;
      if (hops + 1 > max_moved_hops)
        return make_error(errc::moved,
                          "daemon " + hex_u64(*daemon) + " moved more than "
                            + std::to_string(max_moved_hops)
                            + " times for one request (" + path + ")");
      routes[*daemon] = mv->node;
      addr = mv->node;
      from_cache = true;
    }
  }
};

client::client(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {}

client::client(client&&) noexcept = default;

client& client::operator=(client&&) noexcept = default;

client::~client() {
  if (!impl_)
    return;
  // Connections stop their actors before the system that runs them.
  impl_->pool.clear();
}

caf::expected<client> client::connect(client_options opts) {
  auto cfg = std::make_unique<caf::actor_system_config>();
  apply_middleman_defaults(*cfg);
  cfg->load<caf::io::middleman>();
  auto sys = std::make_unique<caf::actor_system>(*cfg);
  auto c = connect(*sys, std::move(opts));
  if (!c)
    return c;
  c->impl_->own_cfg = std::move(cfg);
  c->impl_->own_sys = std::move(sys);
  return c;
}

caf::expected<client> client::connect(caf::actor_system& sys,
                                      client_options opts) {
  if (opts.nodes.empty())
    return make_error(errc::invalid_argument, "no node address to connect to");
  auto st = std::make_unique<impl>();
  st->sys = &sys;
  st->opts = std::move(opts);
  std::string failures;
  caf::error last;
  for (const auto& addr : st->opts.nodes) {
    auto c = st->conn(addr);
    if (c) {
      st->home = addr;
      return client{std::move(st)};
    }
    // A malformed address or a refused option is the caller's mistake, not
    // a node to skip.
    if (is(c.error(), errc::invalid_argument))
      return std::move(c.error());
    failures += (failures.empty() ? "" : "; ") + describe(c.error());
    last = std::move(c.error());
  }
  if (st->opts.nodes.size() == 1)
    return last;
  auto code = is(last, errc::timeout) ? errc::timeout
                                      : errc::target_unavailable;
  return make_error(code, "no node answered: " + failures);
}

caf::expected<response> client::call(const request& req) {
  return impl_->routed(req);
}

caf::expected<deploy_response>
client::deploy(const std::string& kind, uint32_t count,
               std::vector<requirement> requirements,
               std::optional<entity_id> on_node) {
  deploy_request req;
  req.kind = kind;
  req.count = count;
  req.requirements = std::move(requirements);
  req.on_node = on_node;
  return expect<deploy_response>(call(req), "deploy", impl_->home);
}

caf::expected<std::vector<member_info>> client::nodes() {
  auto res = expect<nodes_response>(call(nodes_request{}), "nodes",
                                    impl_->home);
  if (!res)
    return std::move(res.error());
  return std::move(res->nodes);
}

caf::expected<std::vector<delivery>>
client::send(uint64_t daemon_id, std::vector<inbound_event> events) {
  auto n = events.size();
  auto res = expect<send_response>(call(send_request{daemon_id,
                                                     std::move(events)}),
                                   "send", route_of(daemon_id));
  if (!res)
    return std::move(res.error());
  if (res->deliveries.size() != n)
    return make_error(errc::corrupt_data,
                      route_of(daemon_id) + " answered "
                        + std::to_string(res->deliveries.size())
                        + " deliveries for " + std::to_string(n) + " events");
  return std::move(res->deliveries);
}

caf::expected<uint64_t> client::high_water(uint64_t daemon_id,
                                           uint64_t producer_id) {
  auto res = expect<high_water_response>(call(high_water_request{daemon_id,
                                                                 producer_id}),
                                         "highWater", route_of(daemon_id));
  if (!res)
    return std::move(res.error());
  return res->producer_seq;
}

caf::expected<daemon_stats> client::stats(uint64_t daemon_id) {
  auto res = expect<stats_response>(call(stats_request{daemon_id}), "stats",
                                    route_of(daemon_id));
  if (!res)
    return std::move(res.error());
  return res->stats;
}

caf::expected<snapshot_response> client::snapshot(uint64_t daemon_id) {
  return expect<snapshot_response>(call(snapshot_request{daemon_id}),
                                   "snapshot", route_of(daemon_id));
}

caf::expected<daemon_entry> client::resume(uint64_t daemon_id,
                                           bool accept_loss) {
  auto res = expect<resume_response>(call(
                                       resume_request{daemon_id, accept_loss}),
                                     "resume", route_of(daemon_id));
  if (!res)
    return std::move(res.error());
  return std::move(res->daemon);
}

caf::error client::stop(uint64_t daemon_id) {
  auto res = expect<stop_response>(call(stop_request{daemon_id}), "stop",
                                   route_of(daemon_id));
  if (!res)
    return std::move(res.error());
  impl_->routes.erase(daemon_id);
  return {};
}

caf::expected<std::vector<daemon_entry>> client::daemons() {
  auto res = expect<daemons_response>(call(daemons_request{}), "daemons",
                                      impl_->home);
  if (!res)
    return std::move(res.error());
  return std::move(res->daemons);
}

caf::expected<std::vector<std::string>> client::kinds() {
  auto res = expect<kinds_response>(call(kinds_request{}), "kinds",
                                    impl_->home);
  if (!res)
    return std::move(res.error());
  return std::move(res->kinds);
}

const std::string& client::address() const {
  return impl_->home;
}

std::string client::route_of(uint64_t daemon_id) const {
  auto it = impl_->routes.find(daemon_id);
  return it != impl_->routes.end() ? it->second : impl_->home;
}

std::chrono::milliseconds client::timeout() const {
  return impl_->opts.timeout;
}

// -- send_window --------------------------------------------------------------

struct send_window::state {
  client::impl* cl;
  uint64_t daemon_id;
  options opts;
  std::string address;
  client_detail::connection* conn = nullptr;

  struct pending {
    send_request batch;
    uint64_t ticket = 0;
    int hops = 0;
  };
  std::deque<pending> flight;
  caf::error failure;
  uint64_t confirmed = 0;

  std::string range(const send_request& b) const {
    if (b.events.empty())
      return "an empty batch";
    return "producer_seq " + std::to_string(b.events.front().producer_seq)
           + ".." + std::to_string(b.events.back().producer_seq);
  }

  // Remembers the first failure, naming the batch.
  caf::error fail(const send_request& b, const caf::error& err) {
    if (failure)
      return failure;
    // Keeps the cause's code (timeout, target_unavailable, the node's
    // refusal) so callers can tell them apart; CAF's own errors have none
    // of ours and read as io_error.
    auto code = code_of(err);
    failure = make_error(static_cast<int>(code) != 0 ? code : errc::io_error,
                         words_of(err) + "; sending " + range(b) + " to daemon "
                           + hex_u64(daemon_id));
    return failure;
  }

  caf::error reconnect(const std::string& addr) {
    auto c = cl->conn(addr);
    if (!c)
      return std::move(c.error());
    conn = *c;
    address = addr;
    return {};
  }

  void put(pending& p) {
    p.ticket = conn->start(p.batch);
  }

  // Waits for the oldest batch in flight.
  caf::error settle_one() {
    auto p = std::move(flight.front());
    flight.pop_front();
    auto res = conn->wait(p.ticket);
    if (!res)
      return drain(p, res.error());
    if (auto* err = std::get_if<error_response>(&*res))
      return drain(p, to_error(*err));
    if (auto* mv = std::get_if<moved_response>(&*res))
      return follow(std::move(p), *mv);
    auto* ok = std::get_if<send_response>(&*res);
    if (ok == nullptr || ok->deliveries.size() != p.batch.events.size())
      return drain(p, make_error(errc::corrupt_data,
                                 address
                                   + " answered with a malformed "
                                     "send response"));
    ++confirmed;
    if (opts.on_batch)
      opts.on_batch(p.batch, ok->deliveries);
    if (opts.stop_on_rejected)
      for (size_t i = 0; i < ok->deliveries.size(); ++i)
        if (ok->deliveries[i].state == delivery::status::rejected)
          return drain(p,
                       make_error(errc::process_failed,
                                  "producer_seq "
                                    + std::to_string(
                                      p.batch.events[i].producer_seq)
                                    + " rejected: " + ok->deliveries[i].error));
    return {};
  }

  // Stops: waits out the batches still in flight (their answers no longer
  // matter to the caller, but leaving them would leave the connection's
  // tickets behind).
  caf::error drain(const pending& p, const caf::error& err) {
    auto result = fail(p.batch, err);
    while (!flight.empty()) {
      auto q = std::move(flight.front());
      flight.pop_front();
      if (conn != nullptr)
        (void)conn->wait(q.ticket);
    }
    return result;
  }

  // The daemon left the node: every batch after this one went there too
  // and is answered `moved` as well (the node serves them in order), so
  // all of them are sent again, in order, to the daemon's new node.
  caf::error follow(pending p, const moved_response& mv) {
    if (!cl->opts.follow_moved)
      return drain(p, make_error(errc::moved, "daemon " + hex_u64(daemon_id)
                                                + " lives on node " + mv.node));
    if (++p.hops > max_moved_hops)
      return drain(p, make_error(errc::moved, "daemon " + hex_u64(daemon_id)
                                                + " moved more than "
                                                + std::to_string(max_moved_hops)
                                                + " times (last to " + mv.node
                                                + ")"));
    std::deque<pending> again;
    again.push_back(std::move(p));
    while (!flight.empty()) {
      auto q = std::move(flight.front());
      flight.pop_front();
      auto res = conn->wait(q.ticket);
      if (!res || !std::holds_alternative<moved_response>(*res)) {
        // Not moved after a moved one: the node answered one daemon's
        // batches out of order, and what was applied is unknown.
        auto err = !res ? res.error()
                        : make_error(errc::corrupt_data,
                                     address
                                       + " answered a batch after "
                                         "saying the daemon moved");
        flight = std::move(again);
        flight.push_back(std::move(q));
        auto first = std::move(flight.front());
        flight.clear();
        return fail(first.batch, err);
      }
      again.push_back(std::move(q));
    }
    cl->routes[daemon_id] = mv.node;
    if (auto err = reconnect(mv.node))
      return fail(again.front().batch, err);
    for (auto& q : again) {
      put(q);
      flight.push_back(std::move(q));
    }
    return {};
  }
};

send_window::send_window(client& c, uint64_t daemon_id, options opts)
  : st_(std::make_unique<state>()) {
  st_->cl = c.impl_.get();
  st_->daemon_id = daemon_id;
  st_->opts = std::move(opts);
  if (st_->opts.window == 0)
    st_->opts.window = 1;
  if (auto err = st_->reconnect(c.route_of(daemon_id)))
    st_->failure = std::move(err);
}

send_window::send_window(send_window&&) noexcept = default;

send_window& send_window::operator=(send_window&&) noexcept = default;

send_window::~send_window() {
  if (st_ && st_->conn != nullptr)
    while (!st_->flight.empty()) {
      (void)st_->conn->wait(st_->flight.front().ticket);
      st_->flight.pop_front();
    }
}

caf::error send_window::push(std::vector<inbound_event> events) {
  auto& st = *st_;
  if (st.failure)
    return st.failure;
  while (st.flight.size() >= st.opts.window)
    if (auto err = st.settle_one())
      return err;
  state::pending p;
  p.batch.daemon_id = st.daemon_id;
  p.batch.events = std::move(events);
  st.put(p);
  st.flight.push_back(std::move(p));
  return {};
}

caf::error send_window::finish() {
  auto& st = *st_;
  while (!st.failure && !st.flight.empty())
    if (auto err = st.settle_one())
      return err;
  return st.failure;
}

size_t send_window::in_flight() const {
  return st_->flight.size();
}

uint64_t send_window::confirmed() const {
  return st_->confirmed;
}

const std::string& send_window::address() const {
  return st_->address;
}

// -- producer -----------------------------------------------------------------

struct producer::state {
  uint64_t id = 0;
  uint64_t high_water = 0;
  size_t batch_size = 100;
  std::vector<inbound_event> batch;
  producer_progress progress;
  std::optional<send_window> window;
  send_window::batch_callback user_cb;

  void account(const send_request& b, const std::vector<delivery>& ds) {
    progress.sent += ds.size();
    for (const auto& d : ds) {
      switch (d.state) {
        case delivery::status::applied: ++progress.applied; break;
        case delivery::status::duplicate: ++progress.duplicates; break;
        case delivery::status::rejected: ++progress.rejected; break;
      }
    }
    if (!b.events.empty())
      progress.confirmed_through = b.events.back().producer_seq;
    if (user_cb)
      user_cb(b, ds);
  }
};

producer::producer(std::unique_ptr<state> st) : st_(std::move(st)) {}

producer::producer(producer&&) noexcept = default;

producer& producer::operator=(producer&&) noexcept = default;

producer::~producer() = default;

caf::expected<producer> producer::with_id(client& c, uint64_t daemon_id,
                                          uint64_t producer_id, options opts) {
  if (producer_id == 0)
    return make_error(errc::invalid_argument,
                      "producer id 0 is the anonymous producer: its events "
                      "are never deduplicated");
  auto st = std::make_unique<state>();
  st->id = producer_id;
  st->batch_size = opts.batch == 0 ? 1 : opts.batch;
  st->user_cb = std::move(opts.on_batch);
  if (opts.skip_applied) {
    auto hw = c.high_water(daemon_id, producer_id);
    if (!hw)
      return std::move(hw.error());
    st->high_water = *hw;
  }
  auto* raw = st.get();
  send_window::options wo;
  wo.window = opts.window;
  wo.stop_on_rejected = opts.stop_on_rejected;
  wo.on_batch = [raw](const send_request& b, const std::vector<delivery>& ds) {
    raw->account(b, ds);
  };
  st->window.emplace(c, daemon_id, std::move(wo));
  return producer{std::move(st)};
}

caf::expected<producer> producer::open(client& c, uint64_t daemon_id,
                                       const std::string& producer_file,
                                       options opts) {
  auto nonce = load_or_create_nonce(producer_file);
  if (!nonce)
    return std::move(nonce.error());
  return with_id(c, daemon_id, *nonce, std::move(opts));
}

caf::expected<producer> producer::open(client& c, uint64_t daemon_id,
                                       const std::string& producer_file) {
  return open(c, daemon_id, producer_file, options{});
}

caf::error producer::push(bytes payload) {
  auto& st = *st_;
  auto seq = ++st.progress.pushed;
  if (seq <= st.high_water) {
    ++st.progress.skipped;
    st.progress.confirmed_through = seq;
    return {};
  }
  st.batch.push_back(inbound_event{st.id, seq, std::move(payload)});
  if (st.batch.size() < st.batch_size)
    return {};
  auto full = std::move(st.batch);
  st.batch.clear();
  return st.window->push(std::move(full));
}

caf::error producer::flush() {
  auto& st = *st_;
  if (!st.batch.empty()) {
    auto rest = std::move(st.batch);
    st.batch.clear();
    if (auto err = st.window->push(std::move(rest)))
      return err;
  }
  return st.window->finish();
}

uint64_t producer::id() const {
  return st_->id;
}

uint64_t producer::high_water() const {
  return st_->high_water;
}

const producer_progress& producer::progress() const {
  return st_->progress;
}

} // namespace mesh
