#include "mesh/control_client.hpp"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/node_id.hpp>
#include <caf/response_promise.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "base/errc.hpp"
#include "mesh/gateway.hpp"

namespace mesh {

namespace {

using control::wire_bytes;

// Forwards requests to the gateway and fails every one in flight as soon as
// the connection to the node is lost. A scoped_actor waiting on a remote
// response cannot see that (CAF 0.17 sends no error when a remote proxy
// dies), so the blocking caller waits on this actor instead.
struct caller_state {
  caf::actor gateway;
  std::string address;
  bool gone = false;
  std::vector<caf::response_promise> pending;

  static inline const char* name = "mesh.control_caller";
};

caf::error went_away(const std::string& address) {
  return make_error(errc::target_unavailable, "node " + address + " went away");
}

caf::behavior caller_actor(caf::stateful_actor<caller_state>* self,
                           caf::actor gateway, std::string address) {
  self->state.gateway = gateway;
  self->state.address = std::move(address);
  self->monitor(gateway);
  self->set_down_handler([self](caf::down_msg&) {
    auto& st = self->state;
    st.gone = true;
    for (auto& rp : st.pending)
      if (rp.pending())
        rp.deliver(went_away(st.address));
    st.pending.clear();
  });
  return {
    [self](request_atom, wire_bytes& bytes) -> caf::result<wire_bytes> {
      auto& st = self->state;
      if (st.gone)
        return went_away(st.address);
      auto rp = self->make_response_promise();
      st.pending.push_back(rp);
      self
        ->request(st.gateway, caf::infinite, request_atom::value,
                  std::move(bytes))
        .then(
          [rp](wire_bytes& res) mutable {
            if (rp.pending())
              rp.deliver(std::move(res));
          },
          [self, rp](caf::error& err) mutable {
            if (!rp.pending())
              return;
            if (err == caf::sec::request_receiver_down)
              rp.deliver(went_away(self->state.address));
            else
              rp.deliver(std::move(err));
          });
      // Forget promises already answered so `pending` stays small.
      auto& p = st.pending;
      p.erase(std::remove_if(p.begin(), p.end(),
                             [](const caf::response_promise& x) {
                               return !x.pending();
                             }),
              p.end());
      return rp;
    },
  };
}

} // namespace

struct control_client::impl {
  caf::actor_system& sys;
  caf::actor caller;
  std::string address;
  std::chrono::milliseconds timeout;
  control::version_range speaks;
  uint64_t next_id = 0;
  uint16_t version = 0;

  impl(caf::actor_system& s, caf::actor c, std::string addr,
       std::chrono::milliseconds t, control::version_range v)
    : sys(s),
      caller(std::move(c)),
      address(std::move(addr)),
      timeout(t),
      speaks(v) {}

  ~impl() {
    caf::anon_send_exit(caller, caf::exit_reason::user_shutdown);
  }

  // One exchange of bytes, decoded.
  caf::expected<control::response_frame> exchange(wire_bytes bytes);

  // One request: encodes with a fresh id, checks the answer is its answer.
  caf::expected<control::response> call(const control::request& req);
};

caf::expected<control::response_frame>
control_client::impl::exchange(wire_bytes bytes) {
  caf::expected<control::response_frame> result = make_error(errc::timeout,
                                                             "no answer");
  caf::scoped_actor self{sys};
  self->request(caller, timeout, request_atom::value, std::move(bytes))
    .receive(
      [&](wire_bytes& res) {
        auto decoded = control::decode_response(res);
        if (!decoded)
          result = make_error(errc::corrupt_data,
                              "bad response from " + address + ": "
                                + describe(decoded.error()));
        else
          result = std::move(*decoded);
      },
      [&](caf::error& err) {
        if (err == caf::sec::request_timeout)
          result = make_error(errc::timeout,
                              "no answer from " + address + " within "
                                + std::to_string(timeout.count()) + " ms");
        else
          result = std::move(err);
      });
  return result;
}

caf::expected<control::response>
control_client::impl::call(const control::request& req) {
  auto id = ++next_id;
  auto res = exchange(control::encode(req, id, speaks));
  if (!res)
    return std::move(res.error());
  // A node that predates negotiation speaks version 1 only and answers
  // anything else unsupported_version, without a version of its own.
  auto* err = std::get_if<control::error_response>(&res->body);
  if (err != nullptr && err->code == errc::unsupported_version
      && res->version == 0 && speaks.min <= 1 && speaks.max > 1) {
    speaks = {1, 1};
    res = exchange(control::encode(req, id, speaks));
    if (!res)
      return std::move(res.error());
    err = std::get_if<control::error_response>(&res->body);
  }
  auto answered_in = res->version == 0 ? uint16_t{1} : res->version;
  // An error reads the same in every version; the node's own words (a
  // version it refused names both ranges) say more than ours would.
  if (err != nullptr)
    return std::move(res->body);
  if (!speaks.contains(answered_in))
    return make_error(errc::unsupported_version,
                      address + " answered in control protocol "
                        + std::to_string(answered_in) + ", this client speaks "
                        + control::to_string(speaks));
  if (answered_in >= 2 && res->id != id)
    return make_error(errc::corrupt_data, address + " answered request "
                                            + std::to_string(id)
                                            + " with the response to request "
                                            + std::to_string(res->id));
  version = answered_in;
  return std::move(res->body);
}

control_client::control_client(std::unique_ptr<impl> ptr)
  : impl_(std::move(ptr)) {}

control_client::control_client(control_client&&) noexcept = default;

control_client& control_client::operator=(control_client&&) noexcept = default;

control_client::~control_client() = default;

caf::expected<control_client>
control_client::connect(caf::actor_system& sys, const std::string& host,
                        uint16_t port, std::chrono::milliseconds timeout,
                        control::version_range speaks) {
  auto address = host + ":" + std::to_string(port);
  if (!sys.has_middleman())
    return make_error(errc::invalid_argument,
                      "the actor system has no middleman");
  caf::expected<caf::actor> gw = make_error(errc::target_unavailable,
                                            "cannot reach " + address);
  caf::scoped_actor self{sys};
  self
    ->request(sys.middleman().actor_handle(), timeout, caf::connect_atom::value,
              host, port)
    .receive(
      [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
          const std::set<std::string>&) {
        if (ptr)
          gw = caf::actor_cast<caf::actor>(std::move(ptr));
        else
          gw = make_error(errc::target_unavailable,
                          "nothing is published at " + address);
      },
      [&](caf::error& err) {
        if (err == caf::sec::request_timeout)
          gw = make_error(errc::timeout,
                          "no answer from " + address + " within "
                            + std::to_string(timeout.count()) + " ms");
        else
          gw = make_error(errc::target_unavailable, "cannot connect to "
                                                      + address + " ("
                                                      + describe(err) + ")");
      });
  if (!gw)
    return std::move(gw.error());
  auto caller = sys.spawn(caller_actor, std::move(*gw), address);
  return control_client{
    std::make_unique<impl>(sys, std::move(caller), address, timeout, speaks)};
}

caf::expected<control::response>
control_client::call(const control::request& req) {
  return impl_->call(req);
}

caf::expected<control::response_frame>
control_client::call_raw(control::wire_bytes bytes) {
  return impl_->exchange(std::move(bytes));
}

uint16_t control_client::version() const {
  return impl_->version;
}

const std::string& control_client::address() const {
  return impl_->address;
}

} // namespace mesh
