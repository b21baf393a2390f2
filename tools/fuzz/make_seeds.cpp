// Writes the valid seed snapshots of the fuzz corpus (valid-*.bin) into the
// directory named on the command line. Keys come from fixed seeds and ed25519
// signatures are deterministic, so the output is the same on every run.

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.hpp"

namespace {

mesh::keypair seed_key(uint8_t n) {
  mesh::key_seed seed{};
  seed[0] = n;
  seed[31] = 0xf5;
  return mesh::keypair::from_seed(seed);
}

struct seed_case {
  const char* name;
  mesh::snapshot snap;
};

std::vector<seed_case> cases(const mesh::keypair& kp) {
  std::vector<seed_case> out;
  mesh::snapshot minimal;
  minimal.id = kp.id();
  out.push_back({"valid-minimal.bin", minimal});

  mesh::snapshot stateful = minimal;
  stateful.daemon_kind = "counter";
  stateful.through_seq = 5;
  stateful.head = {4, 0x9e3779b97f4a7c15};
  stateful.state = mesh::bytes{5, 0, 0, 0, 0, 0, 0, 0};
  stateful.created_at_ns = 1700000000000000000;
  out.push_back({"valid-counter.bin", stateful});

  mesh::snapshot migration = stateful;
  migration.kind = mesh::snapshot_kind::migration;
  migration.state_version = 3;
  migration.dedup_marks = {{1, 10, 3}, {2, 7, 5}, {0xffffffffffffffff, 1, 1}};
  out.push_back({"valid-migration-dedup.bin", migration});

  mesh::snapshot empty_state = minimal;
  empty_state.daemon_kind = "echo";
  empty_state.state = mesh::bytes{};
  out.push_back({"valid-empty-state.bin", empty_state});

  mesh::snapshot stateless = migration;
  stateless.state.reset();
  stateless.daemon_kind = "window";
  out.push_back({"valid-stateless-dedup.bin", stateless});
  return out;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  auto kp = seed_key(1);
  for (const auto& c : cases(kp)) {
    auto enc = mesh::encode_snapshot(c.snap, kp);
    if (!enc) {
      std::fprintf(stderr, "%s: %s\n", c.name,
                   mesh::describe(enc.error()).c_str());
      return 1;
    }
    std::string path = std::string{argv[1]} + "/" + c.name;
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(reinterpret_cast<const char*>(enc->data()),
              static_cast<std::streamsize>(enc->size()));
    if (!out) {
      std::fprintf(stderr, "%s: write failed\n", path.c_str());
      return 1;
    }
  }
  return 0;
}
