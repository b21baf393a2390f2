#pragma once

// The boundary between meshd and a plugin: a shared object that adds daemon
// kinds at run time (`meshd --plugin libfoo.so`). A plugin exports two C
// symbols and nothing else is looked up:
//
//   #include "actors/plugin.hpp"
//
//   MESHD_PLUGIN_DEFINE_ABI_VERSION()
//
//   MESHD_PLUGIN_EXPORT int meshd_plugin_register(mesh::plugin_registrar* r) {
//     if (auto err = r->add("upper", [] { return std::make_unique<upper>(); }))
//       return 1;
//     return 0;
//   }
//
// The loader (actors/plugin_loader.hpp) calls meshd_plugin_abi_version()
// first and refuses the plugin unless it returns the loader's
// MESHD_PLUGIN_ABI_VERSION; only then does it call meshd_plugin_register().
//
// The entry points have C names, but what crosses them is C++: daemon
// objects, std::function, std::string, caf::error. A plugin must therefore be
// built against the same meshd headers, the same CAF and the same C++ standard
// library (in practice: the same compiler family and distribution) as the
// meshd that loads it. The ABI version catches mismatched meshd headers; it
// cannot catch a different toolchain.

#include <cstdint>
#include <string>

#include <caf/error.hpp>

#include "actors/daemon.hpp"

/// Version of everything a plugin compiles against from meshd: the daemon
/// interface (its virtual functions and their argument types), causal_event,
/// daemon_factory and plugin_registrar. Incremented on any change to them.
#define MESHD_PLUGIN_ABI_VERSION 1u

/// Makes a plugin entry point visible even under -fvisibility=hidden.
#define MESHD_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

namespace mesh {

/// What meshd_plugin_register receives. Implemented by the loader; a plugin
/// only calls add(). The pointer is valid only during meshd_plugin_register.
class plugin_registrar {
public:
  /// Registers `kind`. Errors: those of the runtime's registry, e.g.
  /// factory_already_registered, invalid_argument (empty kind or factory),
  /// shutting_down. After the first error every further add() fails with
  /// that same error, and the loader reports it.
  virtual caf::error add(std::string kind, daemon_factory factory) = 0;

protected:
  ~plugin_registrar() = default;
};

/// Names the loader looks up with dlsym.
constexpr const char* plugin_abi_symbol = "meshd_plugin_abi_version";
constexpr const char* plugin_register_symbol = "meshd_plugin_register";

} // namespace mesh

/// Returns the MESHD_PLUGIN_ABI_VERSION the plugin was compiled with. Define
/// it with MESHD_PLUGIN_DEFINE_ABI_VERSION().
MESHD_PLUGIN_EXPORT uint32_t meshd_plugin_abi_version(void);

/// Registers the plugin's kinds through `r`. Returns 0 on success; any other
/// value fails the load. Called at most once per load_plugin call, on the
/// loader's thread. Kinds added before a failure stay registered.
MESHD_PLUGIN_EXPORT int meshd_plugin_register(mesh::plugin_registrar* r);

/// Defines meshd_plugin_abi_version() in exactly one source file of a plugin.
#define MESHD_PLUGIN_DEFINE_ABI_VERSION()                                      \
  MESHD_PLUGIN_EXPORT uint32_t meshd_plugin_abi_version(void) {                \
    return MESHD_PLUGIN_ABI_VERSION;                                           \
  }
