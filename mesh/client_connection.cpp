#include "mesh/client_connection_internal.hpp"

#include "mesh/link_actor.hpp"

#include <condition_variable>
#include <mutex>
#include <set>
#include <unordered_set>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/node_id.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "base/errc.hpp"
#include "mesh/gateway.hpp"
#include "mesh/node_address.hpp"

namespace mesh::client_detail {

using control::wire_bytes;

// Where answers wait for the client thread. `waiting` holds the tickets
// still wanted: an answer to a ticket abandoned at its deadline is dropped
// instead of piling up.
struct connection_inbox {
  std::mutex mtx;
  std::condition_variable cv;
  std::unordered_set<uint64_t> waiting;
  std::unordered_map<uint64_t, caf::expected<wire_bytes>> done;
  bool gone = false;
  std::string address;

  void put(uint64_t ticket, caf::expected<wire_bytes> x) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (waiting.count(ticket) == 0)
        return;
      done.insert_or_assign(ticket, std::move(x));
    }
    cv.notify_all();
  }

  void lost() {
    {
      std::lock_guard<std::mutex> guard{mtx};
      gone = true;
    }
    cv.notify_all();
  }
};

namespace {

caf::error went_away(const std::string& address) {
  return make_error(errc::target_unavailable, "node " + address + " went away");
}

// Forwards (ticket, bytes) to `target` in arrival order and files each
// answer in the inbox. CAF 0.17 sends no error to a request whose remote
// receiver vanished, so the monitor is what ends the waits of a dead link.
caf::behavior forwarder(caf::event_based_actor* self, caf::actor target,
                        std::shared_ptr<connection_inbox> inbox) {
  self->monitor(target);
  // The link actor lives as long as this forwarder: an actor system waits
  // for every actor at its end, and a link nobody talks to must not hold it.
  self->attach_functor([target](const caf::error&) {
    caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  });
  self->set_down_handler([self, inbox](caf::down_msg&) {
    inbox->lost();
    self->quit();
  });
  return {
    [self, target, inbox](request_atom, uint64_t ticket, wire_bytes& bytes) {
      self
        ->request(target, caf::infinite, request_atom::value, std::move(bytes))
        .then(
          [inbox, ticket](wire_bytes& res) {
            inbox->put(ticket, std::move(res));
          },
          [inbox, ticket](caf::error& err) {
            if (err == caf::sec::request_receiver_down)
              inbox->put(ticket, went_away(inbox->address));
            else
              inbox->put(ticket, std::move(err));
          });
    },
  };
}

caf::error no_answer(const std::string& address,
                     std::chrono::milliseconds timeout) {
  return make_error(errc::timeout, "no answer from " + address + " within "
                                     + std::to_string(timeout.count()) + " ms");
}

} // namespace

caf::expected<std::unique_ptr<connection>>
connection::open(caf::actor_system& sys, const std::string& address,
                 std::chrono::milliseconds timeout,
                 control::version_range speaks, const link_credentials& creds) {
  auto addr = node_address::parse(address);
  if (!addr)
    return std::move(addr.error());
  if (!sys.has_middleman())
    return make_error(errc::invalid_argument,
                      "the actor system has no middleman");
  // Connects and runs the link handshake (mesh/link_actor.hpp): every
  // request after it is sealed, every answer opened, by the link actor.
  auto link = connect_link(sys, addr->host, addr->port, creds, timeout);
  if (!link)
    return std::move(link.error());
  auto inbox = std::make_shared<connection_inbox>();
  inbox->address = address;
  auto fwd = sys.spawn(forwarder, std::move(link->actor), inbox);
  return std::unique_ptr<connection>{
    new connection(std::move(fwd), std::move(inbox), address, timeout, speaks)};
}

connection::connection(caf::actor forwarder,
                       std::shared_ptr<connection_inbox> inbox,
                       std::string address, std::chrono::milliseconds timeout,
                       control::version_range speaks)
  : forwarder_(std::move(forwarder)),
    inbox_(std::move(inbox)),
    address_(std::move(address)),
    timeout_(timeout),
    speaks_(speaks) {}

connection::~connection() {
  caf::anon_send_exit(forwarder_, caf::exit_reason::user_shutdown);
}

bool connection::gone() const {
  std::lock_guard<std::mutex> guard{inbox_->mtx};
  return inbox_->gone;
}

uint64_t connection::start(const control::request& req) {
  auto ticket = ++next_id_;
  deadlines_.emplace(ticket, clock::now() + timeout_);
  {
    std::lock_guard<std::mutex> guard{inbox_->mtx};
    inbox_->waiting.insert(ticket);
  }
  caf::anon_send(forwarder_, request_atom::value, ticket,
                 control::encode(req, ticket, speaks_, flags_));
  return ticket;
}

caf::expected<control::response> connection::wait(uint64_t ticket) {
  auto it = deadlines_.find(ticket);
  if (it == deadlines_.end())
    return make_error(errc::invalid_argument, "no request "
                                                + std::to_string(ticket)
                                                + " in flight to " + address_);
  auto deadline = it->second;
  deadlines_.erase(it);
  caf::expected<wire_bytes> bytes = went_away(address_);
  {
    std::unique_lock<std::mutex> lock{inbox_->mtx};
    auto ready = [&] {
      return inbox_->done.count(ticket) > 0 || inbox_->gone;
    };
    bool answered = inbox_->cv.wait_until(lock, deadline, ready);
    inbox_->waiting.erase(ticket);
    if (!answered)
      return no_answer(address_, timeout_);
    auto at = inbox_->done.find(ticket);
    if (at == inbox_->done.end())
      return went_away(address_);
    bytes = std::move(at->second);
    inbox_->done.erase(at);
  }
  if (!bytes)
    return std::move(bytes.error());
  auto res = control::decode_response(*bytes);
  if (!res)
    return make_error(errc::corrupt_data, "bad response from " + address_ + ": "
                                            + describe(res.error()));
  last_version_ = res->version;
  auto answered_in = res->version == 0 ? uint16_t{1} : res->version;
  // An error reads the same in every version, and the node's own words (a
  // version it refused names both ranges) say more than ours would.
  if (std::holds_alternative<control::error_response>(res->body))
    return std::move(res->body);
  if (!speaks_.contains(answered_in))
    return make_error(errc::unsupported_version,
                      address_ + " answered in control protocol "
                        + std::to_string(answered_in) + ", this client speaks "
                        + control::to_string(speaks_));
  if (answered_in >= 2 && res->id != ticket)
    return make_error(errc::corrupt_data, address_ + " answered request "
                                            + std::to_string(ticket)
                                            + " with the response to request "
                                            + std::to_string(res->id));
  return std::move(res->body);
}

caf::expected<control::response> connection::call(const control::request& req) {
  auto res = wait(start(req));
  if (!res)
    return res;
  // A node that predates negotiation speaks version 1 only and answers
  // anything else unsupported_version, without a version of its own.
  auto* err = std::get_if<control::error_response>(&*res);
  if (err != nullptr && err->code == errc::unsupported_version
      && last_version_ == 0 && speaks_.min <= 1 && speaks_.max > 1) {
    speaks_ = {1, 1};
    return wait(start(req));
  }
  return res;
}

} // namespace mesh::client_detail
