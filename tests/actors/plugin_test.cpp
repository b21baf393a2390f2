#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#include "actors/factory_registry.hpp"
#include "actors/plugin.hpp"
#include "actors/plugin_loader.hpp"
#include "base/errc.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

namespace {

kind_sink into(factory_registry& reg) {
  return [&reg](const std::string& kind, daemon_factory f) {
    return reg.add(kind, std::move(f));
  };
}

bool mentions(const caf::error& err, const std::string& needle) {
  return describe(err).find(needle) != std::string::npos;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path};
  out << text;
}

/// Compiles C `source` into `dir`/`name`.so: stand-ins for broken plugins.
std::string build_so(const test::temp_dir& dir, const std::string& name,
                     const std::string& source) {
  auto src = dir / (name + ".c");
  auto so = dir / (name + ".so");
  write_file(src, source);
  auto cmd = std::string{"'"} + MESHD_C_COMPILER + "' -shared -fPIC -o '" + so
             + "' '" + src + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return so;
}

const std::string abi_ok = "unsigned meshd_plugin_abi_version(void) { return "
                           + std::to_string(MESHD_PLUGIN_ABI_VERSION) + "; }\n";

} // namespace

TEST_CASE("load_plugin registers the example plugin's kind and it processes") {
  factory_registry reg;
  auto kinds = load_plugin(MESHD_EXAMPLE_PLUGIN, into(reg));
  REQUIRE(kinds);
  CHECK(*kinds == std::vector<std::string>{"upper"});
  CHECK(reg.contains("upper"));
  auto d = reg.make("upper");
  REQUIRE(d);
  CHECK((*d)->kind() == "upper");
  causal_event ev;
  ev.payload = bytes_view{std::string_view{"Hello, mesh 42"}}.to_bytes();
  auto out = (*d)->process(ev);
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  CHECK(std::string(out->front().begin(), out->front().end())
        == "HELLO, MESH 42");
}

TEST_CASE("load_plugin of the same plugin twice into one registry fails") {
  factory_registry reg;
  REQUIRE(load_plugin(MESHD_EXAMPLE_PLUGIN, into(reg)));
  auto again = load_plugin(MESHD_EXAMPLE_PLUGIN, into(reg));
  REQUIRE_FALSE(again);
  CHECK(is(again.error(), errc::factory_already_registered));
  CHECK(mentions(again.error(), MESHD_EXAMPLE_PLUGIN));
  CHECK(mentions(again.error(), "'upper'"));
  CHECK(reg.make("upper"));
}

TEST_CASE("load_plugin passes on the registry's error for a kind") {
  auto refuse = [](const std::string&, daemon_factory) {
    return make_error(errc::shutting_down, "registry closed");
  };
  auto r = load_plugin(MESHD_EXAMPLE_PLUGIN, refuse);
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::shutting_down));
  CHECK(mentions(r.error(), "registry closed"));
  CHECK(mentions(r.error(), "kinds registered before it: none"));
}

TEST_CASE("load_plugin of a missing file fails not_found") {
  factory_registry reg;
  auto r = load_plugin("/nonexistent/libnothing.so", into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::not_found));
  CHECK(mentions(r.error(), "/nonexistent/libnothing.so"));
  CHECK(reg.kinds().empty());
}

TEST_CASE("load_plugin of a directory fails invalid_argument") {
  test::temp_dir tmp;
  factory_registry reg;
  auto r = load_plugin(tmp.path(), into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(mentions(r.error(), "not a regular file"));
}

TEST_CASE("load_plugin of a file that is not a shared object shows dlerror") {
  test::temp_dir tmp;
  auto path = tmp / "libfake.so";
  write_file(path, std::string(4, '\n') + std::string(200, 'x'));
  factory_registry reg;
  auto r = load_plugin(path, into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(mentions(r.error(), path + ": cannot load: "));
  CHECK(mentions(r.error(), "invalid ELF header"));
}

TEST_CASE("load_plugin of a shared object without the ABI symbol fails") {
  test::temp_dir tmp;
  auto so = build_so(tmp, "libplain", "int unrelated(void) { return 1; }\n");
  factory_registry reg;
  auto r = load_plugin(so, into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(mentions(r.error(), "not a meshd plugin"));
  CHECK(mentions(r.error(), "meshd_plugin_abi_version"));
}

TEST_CASE("load_plugin of a shared object without the register symbol fails") {
  test::temp_dir tmp;
  auto so = build_so(tmp, "libhalf", abi_ok);
  factory_registry reg;
  auto r = load_plugin(so, into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(mentions(r.error(), "meshd_plugin_register"));
}

TEST_CASE("load_plugin refuses a plugin built for another ABI version") {
  test::temp_dir tmp;
  auto so = build_so(tmp, "libfuture",
                     "unsigned meshd_plugin_abi_version(void) { return "
                       + std::to_string(MESHD_PLUGIN_ABI_VERSION + 1)
                       + "; }\n"
                         "int meshd_plugin_register(void* r) { (void) r; "
                         "return 0; }\n");
  factory_registry reg;
  auto r = load_plugin(so, into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::unsupported_version));
  CHECK(mentions(r.error(), "built for plugin ABI "
                              + std::to_string(MESHD_PLUGIN_ABI_VERSION + 1)));
}

TEST_CASE("load_plugin reports a register function that returns non-zero") {
  test::temp_dir tmp;
  auto so = build_so(tmp, "libsulky",
                     abi_ok
                       + "int meshd_plugin_register(void* r) { (void) r; "
                         "return 7; }\n");
  factory_registry reg;
  auto r = load_plugin(so, into(reg));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(mentions(r.error(), "meshd_plugin_register returned 7"));
}

TEST_CASE("load_plugin accepts a plugin that registers no kinds") {
  test::temp_dir tmp;
  auto so = build_so(tmp, "libempty",
                     abi_ok
                       + "int meshd_plugin_register(void* r) { (void) r; "
                         "return 0; }\n");
  factory_registry reg;
  auto r = load_plugin(so, into(reg));
  REQUIRE(r);
  CHECK(r->empty());
}

TEST_CASE("load_plugin without a kind sink fails invalid_argument") {
  auto r = load_plugin(MESHD_EXAMPLE_PLUGIN, kind_sink{});
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::invalid_argument));
}
