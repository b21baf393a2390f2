// An out-of-tree plugin: libmeshd_reverse.so adds the kind `reverse`, which
// answers every event with its payload's bytes in reverse order. Stateless.

#include <algorithm>
#include <memory>

#include <actors/plugin.hpp>

namespace {

class reverse : public mesh::daemon {
public:
  std::string_view kind() const override {
    return "reverse";
  }

  caf::expected<std::vector<mesh::bytes>>
  process(const mesh::causal_event& ev) override {
    return mesh::one_output(
      mesh::bytes(ev.payload.rbegin(), ev.payload.rend()));
  }
};

} // namespace

MESHD_PLUGIN_DEFINE_ABI_VERSION()

MESHD_PLUGIN_EXPORT int meshd_plugin_register(mesh::plugin_registrar* r) {
  auto make = [] {
    return std::make_unique<reverse>();
  };
  return r->add("reverse", make) ? 1 : 0;
}
