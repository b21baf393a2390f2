// Builds examples/out_of_tree against an installed copy of this build tree,
// the way a user would, then loads the plugin it produces: in this process
// with load_plugin, and into a real meshd (--plugin) driven with meshctl;
// and runs the client program it builds (meshd_feed) against that meshd.
// Hidden from the default run ([.]): ctest runs it as
// examples/out_of_tree_plugin (label out_of_tree), since it needs the whole
// tree built and installable.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "actors/factory_registry.hpp"
#include "actors/plugin_loader.hpp"
#include "base/errc.hpp"
#include "integration/meshd_node.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs `cmd` with its output in `log`; on failure the test fails showing
/// the command and the tail of what it printed.
void run(const std::string& cmd, const std::string& log) {
  int rc = std::system((cmd + " > '" + log + "' 2>&1").c_str());
  if (rc != 0) {
    auto out = slurp(log);
    if (out.size() > 4000)
      out = "..." + out.substr(out.size() - 4000);
    FAIL("command failed (" << rc << "): " << cmd << "\n" << out);
  }
}

} // namespace

TEST_CASE("out-of-tree plugin builds against the installed package and loads",
          "[.][out_of_tree]") {
  test::temp_dir tmp;
  auto prefix = tmp / "prefix";
  auto build = tmp / "build";
  const std::string cmake = MESHD_CMAKE_COMMAND;
  run("'" + cmake + "' --install '" MESHD_BINARY_DIR "' --prefix '" + prefix
        + "'",
      tmp / "install.log");
  run("'" + cmake + "' -S '" MESHD_SOURCE_DIR "/examples/out_of_tree' -B '"
        + build + "' -DCMAKE_PREFIX_PATH='" + prefix
        + "' -DCMAKE_BUILD_TYPE=Release"
          " -DCMAKE_C_COMPILER='" MESHD_C_COMPILER "'"
          " -DCMAKE_CXX_COMPILER='" MESHD_CXX_COMPILER "'",
      tmp / "configure.log");
  run("'" + cmake + "' --build '" + build + "' -j 2", tmp / "build.log");
  const auto plugin = build + "/libmeshd_reverse.so";

  factory_registry reg;
  auto kinds = load_plugin(plugin,
                           [&reg](const std::string& kind, daemon_factory f) {
                             return reg.add(kind, std::move(f));
                           });
  REQUIRE(kinds);
  CHECK(*kinds == std::vector<std::string>{"reverse"});
  auto d = reg.make("reverse");
  REQUIRE(d);
  CHECK((*d)->kind() == "reverse");
  causal_event ev;
  ev.payload = bytes{'a', 'b', 'c'};
  auto out = (*d)->process(ev);
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  CHECK(out->front() == bytes{'c', 'b', 'a'});

  // The real meshd serves the plugin's kind to the real meshctl. The node
  // owns its process: a failing REQUIRE stops it (SIGTERM, then SIGKILL).
  test::meshd_node node{tmp.path(), tmp / "node"};
  node.start("127.0.0.1:0", {"--plugin", plugin});
  auto served = node.ok({"kinds"});
  CHECK(served.find("reverse\n") != std::string::npos);
  auto id = test::first_line(node.ok({"deploy", "reverse"}));
  REQUIRE(id.rfind("0x", 0) == 0);
  CHECK(node.ok({"send", id, "abc"}) == "cba\n");

  // A client program built against the installed package feeds the same
  // node through mesh::client: deploy, a window of batches, the count.
  auto feed = test::run({build + "/meshd_feed", node.address(), "3000",
                         node.psk_file(), node.client_key()},
                        tmp.path());
  INFO("meshd_feed stderr: " << feed.err);
  CHECK(feed.code == 0);
  CHECK(feed.out.rfind("counter 0x", 0) == 0);
  CHECK(feed.out.find(": 3000\n") != std::string::npos);
  auto code = node.terminate(60s);
  INFO("meshd log:\n" << node.log());
  CHECK(code == 0);
}
