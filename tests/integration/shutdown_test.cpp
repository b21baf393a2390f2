// meshd's shutdown tells the truth: a final snapshot that could not be
// written makes it exit non-zero and name the daemon, and nothing is lost
// (the next start replays the log instead).

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "integration/meshd_node.hpp"
#include "support/temp_dir.hpp"

using namespace mesh::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST_CASE("a failed final snapshot makes meshd exit 1 and name the daemon") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto changed = first_line(node.ok({"deploy", "counter"}));
  auto unchanged = first_line(node.ok({"deploy", "counter"}));
  node.ok({"send", changed, "5"});
  node.ok({"send", unchanged, "2"});
  node.ok({"snapshot", unchanged});
  node.ok({"send", changed, "6"});
  // Snapshots cannot be written any more: their directory is now a file.
  auto snaps = dir / "data/snapshots";
  fs::rename(snaps, dir / "snapshots.moved");
  std::ofstream{snaps} << "not a directory\n";

  CHECK(node.terminate(120s) == 1);
  auto log = node.log();
  INFO(log);
  CHECK(log.find("final snapshot") != std::string::npos);
  auto failed_line = log.substr(log.find("shutdown failed"));
  failed_line = first_line(failed_line);
  CHECK(failed_line.find(changed) != std::string::npos);
  // The daemon with nothing new since its snapshot was not written again,
  // so it is not named.
  CHECK(failed_line.find(unchanged) == std::string::npos);
  CHECK(log.find("meshd stopped") == std::string::npos);

  // Nothing was lost: the next start replays the log on the old snapshot.
  fs::remove(snaps);
  fs::rename(dir / "snapshots.moved", snaps);
  node.start();
  CHECK(first_line(node.ok({"send", changed, "0"})) == "11");
  CHECK(first_line(node.ok({"send", unchanged, "0"})) == "2");
  CHECK(node.terminate(120s) == 0);
}
