#include "actors/plugin_loader.hpp"

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include <dlfcn.h>
#include <sys/stat.h>

#include "actors/plugin.hpp"
#include "base/errc.hpp"

namespace mesh {

namespace {

using abi_version_fn = uint32_t (*)();
using register_fn = int (*)(plugin_registrar*);

/// Forwards to the caller's sink and remembers what happened, so the
/// loader can report it whatever the plugin does with the returned error.
class recording_registrar final : public plugin_registrar {
public:
  explicit recording_registrar(const kind_sink& sink) : sink_(sink) {}

  caf::error add(std::string kind, daemon_factory factory) override {
    if (failure_)
      return failure_;
    auto err = sink_(kind, std::move(factory));
    if (err) {
      failure_ = err;
      failed_kind_ = kind;
      return err;
    }
    kinds_.push_back(std::move(kind));
    return {};
  }

  const caf::error& failure() const {
    return failure_;
  }

  const std::string& failed_kind() const {
    return failed_kind_;
  }

  std::vector<std::string>& kinds() {
    return kinds_;
  }

private:
  const kind_sink& sink_;
  std::vector<std::string> kinds_;
  caf::error failure_;
  std::string failed_kind_;
};

std::string last_dlerror() {
  const char* msg = ::dlerror();
  return msg ? msg : "unknown dynamic loader error";
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (auto& x : xs) {
    if (!out.empty())
      out += ", ";
    out += x;
  }
  return out.empty() ? "none" : out;
}

/// Resolves `name` in `handle`; a null result with a pending dlerror means
/// the symbol is absent.
void* find_symbol(void* handle, const char* name, std::string& why) {
  ::dlerror();
  void* sym = ::dlsym(handle, name);
  if (sym == nullptr)
    why = last_dlerror();
  return sym;
}

caf::error registration_failure(const std::string& path,
                                recording_registrar& reg) {
  auto code = code_of(reg.failure());
  auto what = "plugin " + path + ": registering kind '" + reg.failed_kind()
              + "' failed: " + describe(reg.failure())
              + " (kinds registered before it: " + join(reg.kinds()) + ")";
  if (code == errc{})
    return make_error(errc::invalid_argument, std::move(what));
  return make_error(code, std::move(what));
}

} // namespace

caf::expected<std::vector<std::string>> load_plugin(const std::string& path,
                                                    const kind_sink& add) {
  if (!add)
    return make_error(errc::invalid_argument,
                      "plugin " + path + ": no registry to add kinds to");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    auto code = errno == ENOENT ? errc::not_found : errc::io_error;
    return make_error(code, "plugin " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    return make_error(errc::invalid_argument,
                      "plugin " + path + ": not a regular file");
  auto load_path = path.find('/') == std::string::npos ? "./" + path : path;
  void* handle = ::dlopen(load_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr)
    return make_error(errc::invalid_argument,
                      "plugin " + path + ": cannot load: " + last_dlerror());
  // Nothing of the plugin has run but its static constructors, so a plugin
  // refused here can still be unloaded.
  auto refuse = [handle](caf::error err) {
    ::dlclose(handle);
    return err;
  };
  std::string why;
  auto abi = reinterpret_cast<abi_version_fn>(
    find_symbol(handle, plugin_abi_symbol, why));
  if (abi == nullptr)
    return refuse(
      make_error(errc::invalid_argument,
                 "plugin " + path + ": not a meshd plugin: " + why));
  auto version = abi();
  if (version != MESHD_PLUGIN_ABI_VERSION)
    return refuse(make_error(errc::unsupported_version,
                             "plugin " + path + ": built for plugin ABI "
                               + std::to_string(version)
                               + ", this meshd loads ABI "
                               + std::to_string(MESHD_PLUGIN_ABI_VERSION)
                               + "; rebuild it against this meshd"));
  auto reg_fn = reinterpret_cast<register_fn>(
    find_symbol(handle, plugin_register_symbol, why));
  if (reg_fn == nullptr)
    return refuse(
      make_error(errc::invalid_argument,
                 "plugin " + path + ": not a meshd plugin: " + why));
  // From here on the handle is never closed: see the header.
  recording_registrar reg{add};
  int rc = 0;
  try {
    rc = reg_fn(&reg);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument,
                      "plugin " + path
                        + ": meshd_plugin_register threw: " + e.what()
                        + " (kinds registered: " + join(reg.kinds()) + ")");
  } catch (...) {
    return make_error(errc::invalid_argument,
                      "plugin " + path
                        + ": meshd_plugin_register threw (kinds registered: "
                        + join(reg.kinds()) + ")");
  }
  if (reg.failure())
    return registration_failure(path, reg);
  if (rc != 0)
    return make_error(errc::invalid_argument,
                      "plugin " + path + ": meshd_plugin_register returned "
                        + std::to_string(rc)
                        + " (kinds registered: " + join(reg.kinds()) + ")");
  return std::move(reg.kinds());
}

} // namespace mesh
