#pragma once

// Shared by the meshctl commands: one request/response exchange with the
// error reporting every command does the same way, and payload rendering.

#include <optional>
#include <ostream>
#include <string>
#include <variant>

#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "mesh/control_codec.hpp"
#include "tools/meshctl/commands.hpp"

namespace mesh::meshctl {

/// Prints a transport failure (cannot connect, node went away, timeout) and
/// returns exit_unreachable.
int report_transport(session& s, const caf::error& err);

/// Prints the node's refusal and returns exit_refused.
int report_refusal(session& s, const control::error_response& err);

/// Prints where the daemon lives now (the node answered `moved`) and
/// returns exit_refused.
int report_moved(session& s, const control::moved_response& moved);

/// Prints that the node answered with the wrong response type.
int report_mismatch(session& s, const char* request_name);

/// Sends `req` (a request for a daemon follows `moved` to its node) and
/// returns the response of type T (the request's T = Request::response).
/// On failure prints one
/// line, stores the exit code in `code` and returns nullopt.
template<class T>
std::optional<T> ask(session& s, const control::request& req, int& code) {
  auto res = s.client.call(req);
  if (!res) {
    code = report_transport(s, res.error());
    return std::nullopt;
  }
  if (auto* err = std::get_if<control::error_response>(&*res)) {
    code = report_refusal(s, *err);
    return std::nullopt;
  }
  if (auto* moved = std::get_if<control::moved_response>(&*res)) {
    code = report_moved(s, *moved);
    return std::nullopt;
  }
  if (auto* x = std::get_if<T>(&*res))
    return std::move(*x);
  code = report_mismatch(s, control::name_of(req));
  return std::nullopt;
}

/// A payload for people: the text when every byte is printable ASCII,
/// otherwise "0x" and lower-case hex.
std::string render_payload(bytes_view payload);

/// `"payload":"...","encoding":"text"` or `..."encoding":"hex"`, for JSON
/// objects.
std::string json_payload_fields(bytes_view payload);

/// The daemon id as a quoted JSON string, "0x" and 16 hex digits.
std::string json_id(uint64_t id);

} // namespace mesh::meshctl
