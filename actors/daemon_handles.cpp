#include "actors/daemon_handles.hpp"

namespace mesh {

daemon_handles::daemon_handles(lookup_function lookup)
  : lookup_(std::move(lookup)) {}

caf::expected<daemon_actor> daemon_handles::find(uint64_t origin,
                                                 bool refresh) {
  if (!refresh) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto it = cache_.find(origin); it != cache_.end())
      return it->second;
  }
  auto h = lookup_(origin);
  if (!h)
    return h.error();
  std::lock_guard<std::mutex> guard{mtx_};
  cache_[origin] = *h;
  return h;
}

void daemon_handles::forget(uint64_t origin) {
  std::lock_guard<std::mutex> guard{mtx_};
  cache_.erase(origin);
}

void daemon_handles::clear() {
  std::lock_guard<std::mutex> guard{mtx_};
  cache_.clear();
}

} // namespace mesh
