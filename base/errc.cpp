#include "base/errc.hpp"

#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace mesh {

namespace {

constexpr caf::atom_value category = caf::atom("meshd");

} // namespace

std::string_view to_string(errc x) noexcept {
  switch (x) {
    case errc::not_ready: return "not_ready";
    case errc::shutting_down: return "shutting_down";
    case errc::factory_already_registered: return "factory_already_registered";
    case errc::factory_not_found: return "factory_not_found";
    case errc::already_registered: return "already_registered";
    case errc::daemon_not_found: return "daemon_not_found";
    case errc::snapshot_identity_mismatch: return "snapshot_identity_mismatch";
    case errc::bad_signature: return "bad_signature";
    case errc::restore_failed: return "restore_failed";
    case errc::process_failed: return "process_failed";
    case errc::corrupt_data: return "corrupt_data";
    case errc::io_error: return "io_error";
    case errc::poisoned: return "poisoned";
    case errc::unauthenticated: return "unauthenticated";
    case errc::moved: return "moved";
    case errc::wrong_phase: return "wrong_phase";
    case errc::already_migrating: return "already_migrating";
    case errc::no_target_available: return "no_target_available";
    case errc::target_unavailable: return "target_unavailable";
    case errc::timeout: return "timeout";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::unsupported_version: return "unsupported_version";
    case errc::insecure_permissions: return "insecure_permissions";
    case errc::already_exists: return "already_exists";
    case errc::limit_exceeded: return "limit_exceeded";
    case errc::daemon_failed: return "daemon_failed";
    case errc::unavailable: return "unavailable";
  }
  return "unknown_error";
}

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), category,
                    caf::make_message(std::move(what))};
}

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), category};
}

errc code_of(const caf::error& err) noexcept {
  if (!err || err.category() != category)
    return errc{};
  return static_cast<errc>(err.code());
}

bool is(const caf::error& err, errc code) noexcept {
  return code_of(err) == code;
}

std::string describe(const caf::error& err) {
  if (!err)
    return "ok";
  std::string out;
  if (err.category() == category)
    out = std::string{to_string(static_cast<errc>(err.code()))};
  else if (err.category() == caf::atom("system"))
    out = caf::to_string(static_cast<caf::sec>(err.code()));
  else
    out = caf::to_string(err);
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
  }
  return out;
}

} // namespace mesh
