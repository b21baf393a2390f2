#pragma once

// kind -> factory. Thread-safe: registration is atomic (of many concurrent
// registrations of one kind exactly one wins), new kinds may be added while
// the runtime runs, and nothing is accepted after close().

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "actors/daemon.hpp"

namespace mesh {

class factory_registry {
public:
  /// Errors: invalid_argument (empty kind or null factory),
  /// factory_already_registered, shutting_down (after close()).
  caf::error add(const std::string& kind, daemon_factory factory);

  /// A new daemon of `kind`; factory_not_found when unknown, process_failed
  /// when the factory returned null or threw.
  caf::expected<std::unique_ptr<daemon>> make(const std::string& kind) const;

  bool contains(const std::string& kind) const;

  /// The placement filter of `kind` (daemon::requirements()), read from a
  /// throwaway instance: requirements() is an instance method, and the
  /// filter belongs to the kind. Errors as make(), plus process_failed when
  /// requirements() throws.
  caf::expected<capability_filter> requirements(const std::string& kind) const;

  /// Registered kinds, sorted.
  std::vector<std::string> kinds() const;

  /// Refuses every later add().
  void close();

private:
  mutable std::mutex mtx_;
  std::map<std::string, daemon_factory> factories_;
  bool closed_ = false;
};

} // namespace mesh
