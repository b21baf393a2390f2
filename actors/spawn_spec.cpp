#include "actors/spawn_spec.hpp"

#include <optional>

#include <sodium.h>

#include "actors/daemon_core.hpp"
#include "actors/factory_registry.hpp"
#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

spawn_spec::spawn_spec(std::string k, const keypair& id, bytes initial)
  : kind(std::move(k)), seed(id.seed()), initial_snapshot(std::move(initial)) {}

spawn_spec::~spawn_spec() {
  sodium_memzero(seed.data(), seed.size());
}

caf::expected<std::shared_ptr<daemon_core>>
build_daemon(std::shared_ptr<const factory_registry> registry,
             restart_policy policy, const spawn_spec& spec) {
  if ((spec.flags & ~spawn_flags::known) != 0)
    return make_error(errc::invalid_argument,
                      "spawn request with unknown flags "
                        + std::to_string(spec.flags & ~spawn_flags::known));
  auto key = keypair::from_seed(spec.seed);
  std::optional<snapshot> snap;
  auto kind = spec.kind;
  if (!spec.initial_snapshot.empty()) {
    auto expected_id = key.id();
    auto decoded = decode_snapshot(spec.initial_snapshot, &expected_id);
    if (!decoded)
      return decoded.error();
    if (kind.empty())
      kind = decoded->daemon_kind;
    else if (kind != decoded->daemon_kind)
      return make_error(errc::invalid_argument, "spawn of kind " + kind
                                                  + " from a snapshot of kind "
                                                  + decoded->daemon_kind);
    snap = std::move(*decoded);
  }
  if (kind.empty())
    return make_error(errc::invalid_argument, "spawn request without a kind");
  auto inst = registry->make(kind);
  if (!inst)
    return inst.error();
  // Rebuilds (after a rejected event) use the same registry.
  auto maker = [registry, kind] {
    return registry->make(kind);
  };
  auto core = std::make_shared<daemon_core>(kind, std::move(key), maker,
                                            std::move(*inst), policy);
  if (snap)
    if (auto err = core->restore(*snap))
      return err;
  return core;
}

} // namespace mesh
