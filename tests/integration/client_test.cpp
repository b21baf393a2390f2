// mesh::client against real meshd processes: a window keeps order and every
// delivery, a producer resumes exactly once after its own process is
// SIGKILLed, and a frozen (SIGSTOPped) node fails calls within the deadline.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "base/errc.hpp"
#include "integration/meshd_node.hpp"
#include "mesh/client.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using namespace mesh::test;
using namespace std::chrono_literals;

namespace {

client connect(const meshd_node& node, std::chrono::milliseconds timeout) {
  client_options opts;
  opts.nodes = {node.address()};
  opts.timeout = timeout;
  opts.credentials = {node.psk_file(), node.client_key()};
  auto c = client::connect(opts);
  INFO("connect: " << (c ? "" : describe(c.error())));
  REQUIRE(c);
  return std::move(*c);
}

uint64_t deploy_counter(client& c) {
  auto dep = c.deploy("counter");
  REQUIRE(dep);
  REQUIRE(dep->daemons.size() == 1);
  return dep->daemons.front().origin_hash;
}

// The counter's total: an anonymous "0" leaves it unchanged and echoes it.
std::string total(client& c, uint64_t id) {
  auto ds = c.send(id, {inbound_event{0, 0, bytes{'0'}}});
  REQUIRE(ds);
  REQUIRE(ds->size() == 1);
  REQUIRE(ds->front().outputs.size() == 1);
  const auto& p = ds->front().outputs.front().payload;
  return std::string(p.begin(), p.end());
}

bytes number(int i) {
  auto text = std::to_string(1 + i % 7);
  return bytes(text.begin(), text.end());
}

// Pushes payloads 0..lines-1 (number(i)) through a producer bound to `file`.
caf::error feed(client& c, uint64_t id, const std::string& file, int lines,
                producer_progress* out = nullptr) {
  producer::options opts;
  opts.batch = 5;
  opts.window = 8;
  auto p = producer::open(c, id, file, opts);
  if (!p)
    return std::move(p.error());
  for (int i = 0; i < lines; ++i)
    if (auto err = p->push(number(i)))
      return err;
  auto err = p->flush();
  if (out != nullptr)
    *out = p->progress();
  return err;
}

} // namespace

TEST_CASE("client: a window of batches keeps order and every delivery") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto c = connect(node, 30s);
  auto id = deploy_counter(c);
  constexpr int lines = 5000;
  int64_t expected = 0;
  uint64_t next_seq = 1;
  uint64_t out_of_order = 0;
  producer::options opts;
  opts.batch = 50;
  opts.window = 8;
  // Every output is the running total after its event: any reordering or
  // loss shows as a total that is not the expected one.
  opts.on_batch = [&](const control::send_request& b,
                      const std::vector<delivery>& ds) {
    for (size_t i = 0; i < ds.size(); ++i) {
      if (b.events[i].producer_seq != next_seq++)
        ++out_of_order;
      expected += 1 + static_cast<int>((b.events[i].producer_seq - 1) % 7);
      REQUIRE(ds[i].state == delivery::status::applied);
      REQUIRE(ds[i].outputs.size() == 1);
      const auto& p = ds[i].outputs.front().payload;
      REQUIRE(std::string(p.begin(), p.end()) == std::to_string(expected));
    }
  };
  auto p = producer::open(c, id, dir / "producer", opts);
  REQUIRE(p);
  for (int i = 0; i < lines; ++i)
    REQUIRE(!p->push(number(i)));
  REQUIRE(!p->flush());
  CHECK(out_of_order == 0);
  CHECK(next_seq == lines + 1);
  CHECK(p->progress().applied == lines);
  CHECK(p->progress().confirmed_through == lines);
  auto st = c.stats(id);
  REQUIRE(st);
  CHECK(st->events_processed == lines + 0u);
  CHECK(total(c, id) == std::to_string(expected));
}

TEST_CASE("client: a producer killed mid-stream resumes exactly once") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  constexpr int lines = 40000;
  int64_t sum = 0;
  for (int i = 0; i < lines; ++i)
    sum += 1 + i % 7;
  auto file = dir / "producer";
  std::string id_text;
  uint64_t id = 0;
  {
    auto c = connect(node, 30s);
    id = deploy_counter(c);
    id_text = hex_u64(id);
  }
  // The producing process: a fork with no actor system of the parent's
  // (the client above is gone, its threads joined), so the child starts
  // its own.
  int progress_pipe[2];
  REQUIRE(::pipe(progress_pipe) == 0);
  auto pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(progress_pipe[0]);
    client_options opts;
    opts.nodes = {node.address()};
    opts.timeout = 30s;
    opts.credentials = {node.psk_file(), node.client_key()};
    auto c = client::connect(opts);
    if (!c)
      ::_exit(3);
    producer::options po;
    po.batch = 5;
    po.window = 8;
    // Tells the parent how far it got, batch by batch.
    po.on_batch = [fd = progress_pipe[1]](const control::send_request& b,
                                          const std::vector<delivery>&) {
      uint64_t seq = b.events.back().producer_seq;
      (void)!::write(fd, &seq, sizeof seq);
    };
    auto p = producer::open(*c, id, file, po);
    if (!p)
      ::_exit(4);
    for (int i = 0; i < lines; ++i)
      if (p->push(number(i)))
        ::_exit(5);
    ::_exit(p->flush() ? 6 : 0);
  }
  ::close(progress_pipe[1]);
  uint64_t confirmed = 0;
  while (confirmed < 2000) {
    uint64_t seq = 0;
    auto n = ::read(progress_pipe[0], &seq, sizeof seq);
    if (n != sizeof seq)
      break;
    confirmed = seq;
  }
  // Killed with batches in flight: the node may apply them after the
  // producer is gone.
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(progress_pipe[0]);
  REQUIRE(confirmed >= 2000);
  REQUIRE(WIFSIGNALED(status));

  // The same stream again, from the start: what the node applied is
  // skipped, the rest is sent, nothing twice.
  auto c = connect(node, 30s);
  producer_progress pr;
  auto err = feed(c, id, file, lines, &pr);
  INFO("second run: " << describe(err));
  REQUIRE(!err);
  CHECK(pr.skipped >= confirmed);
  CHECK(pr.skipped < static_cast<uint64_t>(lines));
  CHECK(pr.skipped + pr.applied + pr.duplicates == lines + 0u);
  CHECK(pr.rejected == 0);
  CHECK(total(c, id) == std::to_string(sum));
  // And once more: everything is covered by the mark, nothing is sent.
  REQUIRE(!feed(c, id, file, lines, &pr));
  CHECK(pr.skipped == lines + 0u);
  CHECK(pr.sent == 0);
  CHECK(total(c, id) == std::to_string(sum));
  CHECK(node.terminate(60s) == 0);
}

TEST_CASE("client: a frozen node fails calls within the deadline") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  constexpr auto deadline = 1500ms;
  auto c = connect(node, deadline);
  auto id = deploy_counter(c);
  REQUIRE(c.stats(id));
  node.signal(SIGSTOP);
  // Continued however the test ends, so the node can be stopped.
  std::shared_ptr<void> cont{nullptr, [&node](void*) {
                               node.signal(SIGCONT);
                             }};
  auto t0 = std::chrono::steady_clock::now();
  auto st = c.stats(id);
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!st);
  CHECK(is(st.error(), errc::timeout));
  CHECK(took >= deadline);
  CHECK(took < deadline + 1s);

  // A window: the batches in flight fail by their deadlines too.
  send_window::options wo;
  wo.window = 4;
  send_window win{c, id, wo};
  t0 = std::chrono::steady_clock::now();
  caf::error err;
  for (uint64_t i = 0; i < 8 && !err; ++i)
    err = win.push({inbound_event{0, 0, bytes{'1'}}});
  if (!err)
    err = win.finish();
  took = std::chrono::steady_clock::now() - t0;
  REQUIRE(err);
  CHECK(is(err, errc::timeout));
  CHECK(took < 4 * deadline + 1s);

  // Thawed, the same client is served again (late answers are dropped).
  node.signal(SIGCONT);
  std::this_thread::sleep_for(200ms);
  auto again = c.stats(id);
  INFO("after SIGCONT: " << (again ? "" : describe(again.error())));
  CHECK(again);
}
