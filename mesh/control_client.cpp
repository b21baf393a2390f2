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
#include "mesh/link_actor.hpp"

namespace mesh {

using control::wire_bytes;

struct control_client::impl {
  caf::actor_system& sys;
  // The link actor (mesh/link_actor.hpp): seals, opens, and fails every
  // pending call as soon as the connection is lost, which a scoped_actor
  // waiting on a remote response cannot see (CAF 0.17 sends no error when
  // a remote proxy dies).
  caf::actor caller;
  entity_id peer;
  std::string address;
  std::chrono::milliseconds timeout;
  control::version_range speaks;
  uint64_t next_id = 0;
  uint16_t version = 0;

  impl(caf::actor_system& s, caf::actor c, const entity_id& p, std::string addr,
       std::chrono::milliseconds t, control::version_range v)
    : sys(s),
      caller(std::move(c)),
      peer(p),
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
                        const link_credentials& creds,
                        control::version_range speaks) {
  auto link = connect_link(sys, host, port, creds, timeout);
  if (!link)
    return std::move(link.error());
  return control_client{
    std::make_unique<impl>(sys, std::move(link->actor), link->peer,
                           host + ":" + std::to_string(port), timeout, speaks)};
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

const entity_id& control_client::peer() const {
  return impl_->peer;
}

} // namespace mesh
