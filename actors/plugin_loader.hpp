#pragma once

// Loads plugin shared objects (actors/plugin.hpp) into the running process.
//
// Lifetime: a plugin that got as far as meshd_plugin_register stays loaded
// until the process exits, whether registration succeeded or not. The
// factories it registered, the daemons they build and those daemons' vtables
// all live in its code, and nothing tracks when the last of them is gone, so
// load_plugin never unloads it. Loading the same file again maps nothing new
// and fails with factory_already_registered for its first kind.

#include <functional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "actors/daemon.hpp"

namespace mesh {

/// Where a plugin's kinds go: factory_registry::add or
/// runtime::register_factory, wrapped in a lambda.
using kind_sink = std::function<caf::error(const std::string& kind,
                                           daemon_factory factory)>;

/// Loads the shared object at `path` (dlopen RTLD_NOW | RTLD_LOCAL) and
/// passes each kind it registers to `add`. A path without a '/' means a file
/// in the working directory, never a search of the library path. Returns the
/// kinds registered, in order.
///
/// Errors, each naming `path`:
/// - not_found: no such file;
/// - invalid_argument: not a regular file; dlopen failed (not a shared
///   object, unresolved symbols: the dlerror() text is included); a required
///   symbol is missing; meshd_plugin_register returned non-zero or threw;
/// - unsupported_version: the plugin was built for another
///   MESHD_PLUGIN_ABI_VERSION;
/// - whatever `add` returned (e.g. factory_already_registered), with the
///   context naming the kind and the kinds registered before it.
///
/// The library's static constructors run before any check but the file
/// check: load only plugins you trust, as you would any code.
caf::expected<std::vector<std::string>> load_plugin(const std::string& path,
                                                    const kind_sink& add);

} // namespace mesh
