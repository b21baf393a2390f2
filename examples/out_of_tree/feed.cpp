// meshd_feed: a program of your own feeding the mesh through mesh::client,
// without shelling out to meshctl. Deploys a counter, streams EVENTS events
// ("1" each) with a window of batches in flight, and prints the count.
//
//   meshd_feed 127.0.0.1:7400 5000 mesh.psk client.key
//   counter 0x1a2b3c4d5e6f7081: 5000
//
// PSK_FILE is the mesh's pre-shared key (meshd --psk-file); KEY_FILE the
// program's own ed25519 key, created on first use. Without them the client
// uses the open PSK, which only a node without --psk-file (loopback) takes.

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#include <base/errc.hpp>
#include <mesh/client.hpp>

int main(int argc, char** argv) {
  if (argc != 3 && argc != 5) {
    std::cerr << "usage: meshd_feed HOST:PORT EVENTS [PSK_FILE KEY_FILE]"
              << std::endl;
    return 2;
  }
  mesh::client_options opts;
  opts.nodes = {argv[1]};
  if (argc == 5)
    opts.credentials = {argv[3], argv[4]};
  auto events = std::strtoull(argv[2], nullptr, 10);
  auto c = mesh::client::connect(opts);
  if (!c) {
    std::cerr << "meshd_feed: " << mesh::describe(c.error()) << std::endl;
    return 3;
  }
  auto dep = c->deploy("counter");
  if (!dep || dep->daemons.empty()) {
    std::cerr << "meshd_feed: deploy: "
              << (dep ? mesh::describe(mesh::control::to_error(*dep->failure))
                      : mesh::describe(dep.error()))
              << std::endl;
    return 1;
  }
  auto id = dep->daemons.front().origin_hash;
  // A fresh producer id: this stream is never resumed. A stream that must
  // survive restarts uses producer::open with a producer file instead.
  std::random_device rd;
  uint64_t producer_id = (uint64_t{rd()} << 32) | rd() | 1;
  mesh::producer::options po;
  po.batch = 100;
  po.window = 8;
  auto p = mesh::producer::with_id(*c, id, producer_id, po);
  if (!p) {
    std::cerr << "meshd_feed: " << mesh::describe(p.error()) << std::endl;
    return 1;
  }
  for (uint64_t i = 0; i < events; ++i)
    if (auto err = p->push(mesh::bytes{'1'})) {
      std::cerr << "meshd_feed: " << mesh::describe(err) << std::endl;
      return 1;
    }
  if (auto err = p->flush()) {
    std::cerr << "meshd_feed: " << mesh::describe(err) << std::endl;
    return 1;
  }
  // "0" leaves the counter as it is and answers its total.
  auto ds = c->send(id, {mesh::inbound_event{0, 0, mesh::bytes{'0'}}});
  if (!ds || ds->size() != 1 || ds->front().outputs.empty()) {
    std::cerr << "meshd_feed: cannot read the count" << std::endl;
    return 1;
  }
  const auto& total = ds->front().outputs.front().payload;
  std::cout << "counter " << mesh::hex_u64(id) << ": "
            << std::string(total.begin(), total.end()) << std::endl;
  return 0;
}
