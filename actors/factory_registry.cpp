#include "actors/factory_registry.hpp"

#include <exception>

#include "base/errc.hpp"

namespace mesh {

caf::error factory_registry::add(const std::string& kind,
                                 daemon_factory factory) {
  if (kind.empty())
    return make_error(errc::invalid_argument, "daemon kind must not be empty");
  if (!factory)
    return make_error(errc::invalid_argument,
                      "factory for kind '" + kind + "' is empty");
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_)
    return make_error(errc::shutting_down,
                      "cannot register kind '" + kind + "': runtime shut down");
  auto [it, added] = factories_.emplace(kind, std::move(factory));
  if (!added)
    return make_error(errc::factory_already_registered,
                      "kind '" + kind + "' is already registered");
  return {};
}

caf::expected<std::unique_ptr<daemon>>
factory_registry::make(const std::string& kind) const {
  daemon_factory f;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto it = factories_.find(kind);
    if (it == factories_.end())
      return make_error(errc::factory_not_found,
                        "no factory for kind '" + kind + "'");
    f = it->second;
  }
  try {
    auto d = f();
    if (!d)
      return make_error(errc::process_failed,
                        "factory for kind '" + kind + "' returned null");
    return d;
  } catch (const std::exception& e) {
    return make_error(errc::process_failed,
                      "factory for kind '" + kind + "' threw: " + e.what());
  } catch (...) {
    return make_error(errc::process_failed,
                      "factory for kind '" + kind + "' threw");
  }
}

caf::expected<capability_filter>
factory_registry::requirements(const std::string& kind) const {
  auto d = make(kind);
  if (!d)
    return std::move(d.error());
  try {
    return (*d)->requirements();
  } catch (const std::exception& e) {
    return make_error(errc::process_failed, "requirements() of kind '" + kind
                                              + "' threw: " + e.what());
  } catch (...) {
    return make_error(errc::process_failed,
                      "requirements() of kind '" + kind + "' threw");
  }
}

bool factory_registry::contains(const std::string& kind) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return factories_.count(kind) > 0;
}

std::vector<std::string> factory_registry::kinds() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<std::string> out;
  for (auto& kv : factories_)
    out.push_back(kv.first);
  return out;
}

void factory_registry::close() {
  std::lock_guard<std::mutex> guard{mtx_};
  closed_ = true;
}

} // namespace mesh
