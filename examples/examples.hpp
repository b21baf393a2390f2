#pragma once

// The example daemon kinds, for registration with a runtime or a factory
// registry:
//
//   for (auto& [kind, factory] : mesh::examples::example_kinds())
//     if (auto err = rt.register_factory(kind, factory))
//       ...
//
// Nothing is registered implicitly: the program that wants these kinds asks
// for them (no global registries).

#include <string>
#include <utility>
#include <vector>

#include "actors/daemon.hpp"

namespace mesh::examples {

/// {kind, factory} for `counter`, `echo` and `window` (default size), in
/// that order. The factories are thread-safe and never return null.
std::vector<std::pair<std::string, daemon_factory>> example_kinds();

} // namespace mesh::examples
