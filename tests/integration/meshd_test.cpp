// Integration tests: real meshd processes on 127.0.0.1 (ephemeral ports),
// driven with meshctl. Every process is stopped by its owner's destructor.

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integration/meshd_node.hpp"
#include "integration/process.hpp"
#include "support/temp_dir.hpp"

using namespace mesh::test;
using namespace std::chrono_literals;

namespace {

// Deploys one daemon of `kind` and returns its id.
std::string deploy(meshd_node& node, const std::string& kind) {
  auto out = node.ok({"deploy", kind});
  auto id = first_line(out);
  REQUIRE(id.rfind("0x", 0) == 0);
  REQUIRE(id.size() == 18);
  return id;
}

// A port nothing listens on: bound, then released.
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Writes `lines` numbers (line i holds 1 + i % 7) and returns their sum.
int64_t write_numbers(const std::string& path, int lines) {
  std::ofstream out{path};
  int64_t sum = 0;
  for (int i = 0; i < lines; ++i) {
    out << (1 + i % 7) << '\n';
    sum += 1 + i % 7;
  }
  return sum;
}

uint64_t stat_value(const std::string& stats_out, const std::string& name) {
  std::istringstream in{stats_out};
  for (std::string key, value; in >> key >> value;)
    if (key == name)
      return std::stoull(value);
  FAIL("no " << name << " in stats output:\n" << stats_out);
  return 0;
}

// The counter's current total: sending 0 leaves it unchanged and echoes it.
std::string counter_total(meshd_node& node, const std::string& id) {
  return first_line(node.ok({"send", id, "0"}));
}

} // namespace

TEST_CASE("deploy and send return the daemon's outputs") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto counter = deploy(node, "counter");
  CHECK(node.ok({"send", counter, "5"}) == "5\n");
  CHECK(node.ok({"send", counter, "7"}) == "12\n");
  auto echo = deploy(node, "echo");
  CHECK(node.ok({"send", echo, "hello world"}) == "hello world\n");
  CHECK(node.ok({"send", echo, "--hex", "00ff"}) == "0x00ff\n");
  auto json = node.ok({"--json", "send", counter, "1"});
  CHECK(json.find("\"status\":\"applied\"") != std::string::npos);
  CHECK(json.find("\"payload\":\"13\"") != std::string::npos);
}

TEST_CASE("deploy --count prints one id per line") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto out = node.ok({"deploy", "echo", "--count", "3"});
  std::istringstream in{out};
  std::vector<std::string> ids;
  for (std::string line; std::getline(in, line);)
    ids.push_back(line);
  REQUIRE(ids.size() == 3);
  for (auto& id : ids)
    CHECK(id.rfind("0x", 0) == 0);
}

TEST_CASE("daemons prints a table of id, kind, seq and phase") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  CHECK(node.ok({"daemons"}).find("no daemons") != std::string::npos);
  auto counter = deploy(node, "counter");
  auto echo = deploy(node, "echo");
  node.ok({"send", counter, "1"});
  node.ok({"send", counter, "2"});
  auto table = node.ok({"daemons"});
  std::istringstream in{table};
  std::string header;
  std::getline(in, header);
  CHECK(header.rfind("ID", 0) == 0);
  CHECK(header.find("KIND") != std::string::npos);
  CHECK(header.find("SEQ") != std::string::npos);
  CHECK(header.find("PHASE") != std::string::npos);
  int rows = 0;
  // Each row: ID KIND SEQ PHASE EPOCH NODE ADDRESS.
  for (std::string id, kind, seq, phase, epoch, node_id, address;
       in >> id >> kind >> seq >> phase >> epoch >> node_id >> address;) {
    ++rows;
    CHECK(epoch == "1");
    CHECK(address == node.address());
    CHECK(phase == "running");
    if (id == counter) {
      CHECK(kind == "counter");
      CHECK(seq == "2");
    } else {
      CHECK(id == echo);
      CHECK(kind == "echo");
      CHECK(seq == "0");
    }
  }
  CHECK(rows == 2);
  auto json = node.ok({"--json", "daemons"});
  CHECK(json.rfind("[", 0) == 0);
  CHECK(json.find("\"id\":\"" + counter + "\"") != std::string::npos);
  CHECK(json.find("\"phase\":\"running\"") != std::string::npos);
}

TEST_CASE("kinds lists the example kinds") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto out = node.ok({"kinds"});
  CHECK(out.find("counter\n") != std::string::npos);
  CHECK(out.find("echo\n") != std::string::npos);
  CHECK(out.find("window\n") != std::string::npos);
}

TEST_CASE("stats, snapshot and stop act on one daemon") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = deploy(node, "counter");
  node.ok({"send", id, "3"});
  node.ok({"send", id, "4"});
  auto stats = node.ok({"stats", id});
  CHECK(stat_value(stats, "events_processed") == 2);
  CHECK(stat_value(stats, "last_seq") == 2);
  auto snap = node.ok({"snapshot", id, "--out", dir / "snap.bin"});
  CHECK(snap.find("through_seq 2") != std::string::npos);
  CHECK(read_file(dir / "snap.bin").size() > 0);
  CHECK(node.ok({"stop", id}) == "stopped " + id + "\n");
  auto after = node.ctl({"stats", id});
  CHECK(after.code == 1);
  CHECK(after.err.find("daemon_not_found") != std::string::npos);
}

TEST_CASE("an unknown daemon id fails with one line on stderr") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto r = node.ctl({"send", "0x00000000000004d2", "1"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err_lines() == 1);
  CHECK(r.err.rfind("meshctl: daemon_not_found", 0) == 0);
  CHECK(r.err.find("0x00000000000004d2") != std::string::npos);
  auto bad = node.ctl({"stats", "not-an-id"});
  CHECK(bad.code == 2);
  CHECK(bad.err_lines() == 1);
  CHECK(bad.err.find("bad daemon id 'not-an-id'") != std::string::npos);
}

TEST_CASE("an unreachable node fails with a clear message") {
  temp_dir dir;
  auto addr = "127.0.0.1:" + std::to_string(closed_port());
  auto r = run({meshctl_binary(), "--node", addr, "--client-key",
                dir / "client.key", "daemons"},
               dir.path());
  CHECK(r.code == 3);
  CHECK(r.out.empty());
  CHECK(r.err_lines() == 1);
  CHECK(r.err.find("meshctl: target_unavailable: cannot connect to " + addr)
        != std::string::npos);
}

TEST_CASE("meshd refuses a bad --fsync value") {
  temp_dir dir;
  auto r = run({meshd_binary(), "--data-dir", dir / "data", "--listen",
                "127.0.0.1:0", "--fsync", "sometimes"},
               dir.path());
  CHECK(r.code == 2);
  CHECK(r.err_lines() == 1);
  CHECK(r.err.find("meshd: invalid --fsync") != std::string::npos);
  CHECK(r.err.find("'sometimes'") != std::string::npos);
}

TEST_CASE("meshd refuses a --plugin file that does not exist") {
  temp_dir dir;
  auto missing = dir / "libnothing.so";
  auto r = run({meshd_binary(), "--data-dir", dir / "data", "--listen",
                "127.0.0.1:0", "--plugin", missing},
               dir.path());
  CHECK(r.code == 1);
  CHECK(r.err.find("meshd: cannot load plugin " + missing)
        != std::string::npos);
  CHECK(r.err.find("not_found") != std::string::npos);
}

TEST_CASE("meshd serves the kinds of a --plugin") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start("127.0.0.1:0", {"--plugin", MESHD_EXAMPLE_PLUGIN});
  CHECK(node.ok({"kinds"}).find("upper\n") != std::string::npos);
  auto id = deploy(node, "upper");
  CHECK(node.ok({"send", id, "shout"}) == "SHOUT\n");
}

// The node id the log's "meshd listening" line names.
std::string logged_node_id(const std::string& log) {
  auto at = log.find(" node=");
  REQUIRE(at != std::string::npos);
  auto id = log.substr(at + 6, 64);
  REQUIRE(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  return id;
}

TEST_CASE("a node creates its key on first start and keeps its id") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  CHECK(node.log().find("created node key") != std::string::npos);
  auto first = logged_node_id(node.log());
  struct stat st {};
  REQUIRE(::stat((dir / "data/node.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(node.terminate(60s) == 0);
  node.start();
  CHECK(node.log().find("created node key") == std::string::npos);
  CHECK(logged_node_id(node.log()) == first);
  CHECK(node.terminate(60s) == 0);
  // An exposed key is never replaced: the node refuses to start.
  REQUIRE(::chmod((dir / "data/node.key").c_str(), 0644) == 0);
  auto r = run({meshd_binary(), "--data-dir", dir / "data", "--listen",
                "127.0.0.1:0"},
               dir.path());
  CHECK(r.code == 1);
  INFO(r.err);
  CHECK(r.err.find("node key:") != std::string::npos);
  CHECK(r.err.find("0644") != std::string::npos);
}

TEST_CASE("a second meshd on the same data directory refuses to start") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto r = run({meshd_binary(), "--data-dir", dir / "data", "--listen",
                "127.0.0.1:0"},
               dir.path());
  CHECK(r.code == 1);
  CHECK(r.err.find("is in use by another meshd") != std::string::npos);
  CHECK(node.running());
}

TEST_CASE("SIGTERM exits 0 and a restart brings the daemons back") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = deploy(node, "counter");
  node.ok({"send", id, "5"});
  node.ok({"send", id, "6"});
  CHECK(node.terminate(120s) == 0);
  CHECK(node.log().find("meshd stopped") != std::string::npos);
  node.start();
  auto table = node.ok({"daemons"});
  CHECK(table.find(id) != std::string::npos);
  CHECK(counter_total(node, id) == "11");
}

namespace {

enum class interruption { sigkill, sigterm };

// Streams a file into a counter with a producer file, interrupts meshd
// mid-stream, restarts it on the same data directory and port, and re-runs
// the same command: every line must be applied exactly once.
void resume_after(interruption how) {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = deploy(node, "counter");
  auto events = dir / "events.txt";
  constexpr int lines = 40000;
  auto sum = write_numbers(events, lines);
  std::vector<std::string>
    send{meshctl_binary(),  "--node",        node.address(),
         "--psk-file",      node.psk_file(), "--client-key",
         node.client_key(), "send",          id,
         "--from-file",     events,          "--producer-file",
         dir / "producer",  "--batch",       "5"};
  // Interrupt meshd while the stream runs: after some but not all lines.
  uint64_t applied_before = 0;
  int first_code = -1;
  {
    child stream{send, dir / "first.out", dir / "first.err"};
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (applied_before < 2000) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      REQUIRE(stream.running());
      auto st = node.ctl({"stats", id});
      if (st.code == 0)
        applied_before = stat_value(st.out, "events_processed");
      std::this_thread::sleep_for(20ms);
    }
    if (how == interruption::sigkill)
      node.kill9();
    else
      CHECK(node.terminate(60s) == 0);
    first_code = stream.wait_for(60s);
  }
  REQUIRE(applied_before < lines);
  auto first_err = read_file(dir / "first.err");
  INFO("first run stderr: " << first_err);
  if (how == interruption::sigkill) {
    CHECK(first_code == 3);
    CHECK(first_err.find("went away after line") != std::string::npos);
  } else {
    // Answered shutting_down (1) or cut off when the process exited (3).
    CHECK((first_code == 1 || first_code == 3));
  }
  CHECK(first_err.find("applied through") != std::string::npos);

  // Same data directory, same port, right away.
  auto address = node.address();
  node.start(address);
  REQUIRE(node.address() == address);
  auto again = run(send, dir.path());
  INFO("second run stderr: " << again.err);
  REQUIRE(again.code == 0);
  CHECK(again.out.find("sent " + std::to_string(lines)) == 0);
  CHECK(again.out.find("rejected 0") != std::string::npos);
  // Lines the node applied before the interruption are duplicates now.
  auto dup_at = again.out.find("duplicates ");
  REQUIRE(dup_at != std::string::npos);
  auto duplicates = std::stoull(again.out.substr(dup_at + 11));
  CHECK(duplicates >= applied_before);
  CHECK(duplicates < static_cast<uint64_t>(lines));
  CHECK(counter_total(node, id) == std::to_string(sum));

  // Resending everything changes nothing: every line is a duplicate.
  auto third = node.ok({"send", id, "--from-file", events, "--producer-file",
                        dir / "producer", "--no-skip"});
  CHECK(third.find("applied 0, duplicates " + std::to_string(lines))
        != std::string::npos);
  CHECK(counter_total(node, id) == std::to_string(sum));
}

} // namespace

TEST_CASE("send --from-file resumes exactly once after meshd is killed") {
  resume_after(interruption::sigkill);
}

TEST_CASE("send --from-file resumes exactly once after meshd is stopped") {
  resume_after(interruption::sigterm);
}

TEST_CASE("send --from-file without a producer file is a new producer") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = deploy(node, "counter");
  auto events = dir / "events.txt";
  auto sum = write_numbers(events, 250);
  auto first = node.ok({"send", id, "--from-file", events, "--batch", "100"});
  CHECK(first == "sent 250, applied 250, duplicates 0, rejected 0\n");
  node.ok({"send", id, "--from-file", events});
  CHECK(counter_total(node, id) == std::to_string(2 * sum));
}

TEST_CASE("deleting meshd.lock does not let a second meshd in") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  REQUIRE(::unlink((dir / "data/meshd.lock").c_str()) == 0);
  child second{{meshd_binary(), "--data-dir", dir / "data", "--listen",
                "127.0.0.1:0"},
               dir / "second.out",
               dir / "second.err"};
  auto code = second.wait_for(30s);
  auto err = read_file(dir / "second.err");
  INFO("second meshd stderr: " << err);
  CHECK(code == 1);
  CHECK(err.find("is in use by another meshd") != std::string::npos);
  CHECK(node.running());
}

TEST_CASE("meshd refuses an empty --data-dir as bad usage") {
  temp_dir dir;
  auto r = run({meshd_binary(), "--data-dir", "", "--listen", "127.0.0.1:0"},
               dir.path(), 30s);
  CHECK(r.code == 2);
  CHECK(r.err_lines() == 1);
  CHECK(r.err.find("meshd: --data-dir must not be empty") != std::string::npos);
}

TEST_CASE("meshd says address in use when its port is taken") {
  temp_dir dir;
  meshd_node first{dir.path(), dir / "a"};
  first.start();
  auto r = run({meshd_binary(), "--data-dir", dir / "b", "--listen",
                first.address()},
               dir.path(), 30s);
  CHECK(r.code == 1);
  CHECK(r.err.find("cannot listen on " + first.address() + ": address in use")
        != std::string::npos);
  CHECK(first.running());
}

TEST_CASE("send --from-file fails when the high-water mark is past the end of "
          "the file") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = deploy(node, "counter");
  auto producer = dir / "producer";
  auto longer = dir / "longer.txt";
  auto sum = write_numbers(longer, 500);
  node.ok({"send", id, "--from-file", longer, "--producer-file", producer});
  // Another client used the same producer id for a longer stream.
  auto shorter = dir / "shorter.txt";
  write_numbers(shorter, 300);
  auto r = node.ctl(
    {"send", id, "--from-file", shorter, "--producer-file", producer});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(r.err_lines() == 1);
  CHECK(r.err.find("high-water mark 500") != std::string::npos);
  CHECK(r.err.find("past the end of " + shorter + " (300 lines)")
        != std::string::npos);
  CHECK(counter_total(node, id) == std::to_string(sum));
}

namespace {

// Flips one byte in the middle of `path`.
void damage(const std::string& path) {
  auto bytes = read_file(path);
  REQUIRE(bytes.size() > 16);
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << bytes;
}

// The daemons table row of `id`, split into columns.
std::vector<std::string> row_of(const std::string& table,
                                const std::string& id) {
  std::istringstream in{table};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(id, 0) != 0)
      continue;
    std::vector<std::string> cols;
    std::istringstream words{line};
    for (std::string w; words >> w;)
      cols.push_back(w);
    return cols;
  }
  FAIL("no row for " << id << " in:\n" << table);
  return {};
}

} // namespace

TEST_CASE("daemons lists a daemon with a damaged snapshot as failed with the "
          "reason, and resume reports why it cannot be rebuilt") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto broken = deploy(node, "counter");
  auto healthy = deploy(node, "counter");
  node.ok({"send", broken, "5"});
  node.ok({"send", healthy, "7"});
  REQUIRE(node.terminate(60s) == 0);
  damage(dir / ("data/snapshots/" + broken.substr(2)));
  node.start();

  auto table = node.ok({"daemons"});
  INFO("daemons:\n" << table);
  CHECK(first_line(table).find("REASON") != std::string::npos);
  auto row = row_of(table, broken);
  REQUIRE(row.size() > 4);
  CHECK(row[3] == "failed");
  CHECK(table.find("snapshot damaged") != std::string::npos);
  CHECK(row_of(table, healthy)[3] == "running");
  auto json = node.ok({"--json", "daemons"});
  CHECK(json.find("\"reason\":\"snapshot damaged") != std::string::npos);

  // Its state cannot come back: resume fails, naming the daemon.
  auto r = node.ctl({"resume", broken});
  CHECK(r.code == 1);
  CHECK(r.err_lines() == 1);
  CHECK(r.err.find("daemon_failed") != std::string::npos);
  CHECK(r.err.find("cannot be rebuilt") != std::string::npos);
  CHECK(row_of(node.ok({"daemons"}), broken)[3] == "failed");

  // A running daemon is not resumed; an unknown one is not found.
  auto running = node.ctl({"resume", healthy});
  CHECK(running.code == 1);
  CHECK(running.err.find("is not failed (phase running)") != std::string::npos);
  auto unknown = node.ctl({"resume", "0x00000000000004d2"});
  CHECK(unknown.code == 1);
  CHECK(unknown.err.find("daemon_not_found") != std::string::npos);
  CHECK(counter_total(node, healthy) == "7");
}

TEST_CASE("resume of a daemon that lost logged inputs needs --accept-loss") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  std::vector<std::string> flags{"--snapshot-every", "0", "--fsync",
                                 "every_n:1"};
  node.start("127.0.0.1:0", flags);
  auto id = deploy(node, "counter");
  for (int i = 0; i < 5; ++i)
    node.ok({"send", id, "1"});
  // No snapshot was taken: the daemon comes back from the log alone.
  node.kill9();
  // Damage the third of the daemon's five log records (the last five).
  std::string idx;
  for (int gen = 0; gen < 100 && idx.empty(); ++gen) {
    auto p = dir / ("data/log/v" + std::to_string(gen) + "/idx");
    if (::access(p.c_str(), F_OK) == 0)
      idx = p;
  }
  REQUIRE(!idx.empty());
  {
    std::fstream f{idx, std::ios::in | std::ios::out | std::ios::binary};
    f.seekg(0, std::ios::end);
    auto records = static_cast<long>(f.tellg()) / 32;
    REQUIRE(records >= 5);
    auto checksum_at = (records - 3) * 32 + 24;
    char c = 0;
    f.seekg(checksum_at);
    f.get(c);
    f.seekp(checksum_at);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  node.start("127.0.0.1:0", flags);
  auto table = node.ok({"daemons"});
  INFO("daemons:\n" << table << "\nlog:\n" << node.log());
  CHECK(row_of(table, id)[3] == "failed");
  CHECK(table.find("log gap") != std::string::npos);

  auto refused = node.ctl({"resume", id});
  CHECK(refused.code == 1);
  CHECK(refused.err_lines() == 1);
  CHECK(refused.err.find("lost logged inputs 3..5") != std::string::npos);
  CHECK(refused.err.find("meshctl resume " + id + " --accept-loss")
        != std::string::npos);
  CHECK(row_of(node.ok({"daemons"}), id)[3] == "failed");

  CHECK(node.ok({"resume", id, "--accept-loss"})
        == "resumed " + id + " at seq 5\n");
  auto after = node.ok({"daemons"});
  CHECK(row_of(after, id)[3] == "running");
  CHECK(after.find("REASON") == std::string::npos);
  // Inputs 1 and 2 survived; the lost seqs are not reused.
  CHECK(counter_total(node, id) == "2");
  CHECK(stat_value(node.ok({"stats", id}), "last_seq") == 6);
}
