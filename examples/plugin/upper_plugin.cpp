// An in-tree plugin: libmeshd_example_plugin.so adds the kind `upper`, which
// answers every event with its payload in ASCII upper case. Stateless.
//
//   meshd --plugin build/examples/plugin/libmeshd_example_plugin.so ...

#include <memory>

#include "actors/plugin.hpp"

namespace {

class upper : public mesh::daemon {
public:
  std::string_view kind() const override {
    return "upper";
  }

  caf::expected<std::vector<mesh::bytes>>
  process(const mesh::causal_event& ev) override {
    mesh::bytes out = ev.payload;
    for (auto& c : out)
      if (c >= 'a' && c <= 'z')
        c = static_cast<uint8_t>(c - 'a' + 'A');
    return mesh::one_output(std::move(out));
  }
};

} // namespace

MESHD_PLUGIN_DEFINE_ABI_VERSION()

MESHD_PLUGIN_EXPORT int meshd_plugin_register(mesh::plugin_registrar* r) {
  auto make = [] {
    return std::make_unique<upper>();
  };
  return r->add("upper", make) ? 1 : 0;
}
