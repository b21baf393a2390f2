#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "base/errc.hpp"
#include "mesh/link_crypto.hpp"

using namespace mesh;
using namespace mesh::link;

namespace {

psk psk_of(uint8_t fill) {
  psk::bytes_type b;
  b.fill(fill);
  return psk::from_bytes(b);
}

link_credentials creds(uint8_t fill,
                       std::optional<entity_id> expect = std::nullopt) {
  return {psk_of(fill), keypair::generate(), expect};
}

wire_bytes text(const std::string& s) {
  return wire_bytes(s.begin(), s.end());
}

// A completed handshake between `c` (initiator) and `s` (responder).
struct linked {
  session client;
  session server;
};

linked handshake(const link_credentials& c, const link_credentials& s) {
  initiator ini;
  auto accepted = responder::accept(s, ini.hello(c));
  REQUIRE(accepted);
  auto fin = ini.finish(c, accepted->second);
  REQUIRE(fin);
  auto done = accepted->first.finish(fin->first);
  REQUIRE(done);
  CHECK(is_ready(done->first, fin->second.id()));
  return {std::move(fin->second), std::move(done->second)};
}

void check_refused(const caf::error& err) {
  INFO(describe(err));
  CHECK(is(err, errc::unauthenticated));
}

} // namespace

TEST_CASE("a handshake authenticates both ends and frames flow both ways") {
  auto c = creds(7);
  auto s = creds(7);
  auto l = handshake(c, s);
  CHECK(l.client.peer() == s.key.id());
  CHECK(l.server.peer() == c.key.id());
  CHECK(l.client.id() == l.server.id());
  for (int i = 0; i < 3; ++i) {
    auto sealed = l.client.seal(text("request " + std::to_string(i)));
    REQUIRE(sealed);
    CHECK(kind_of(*sealed) == kind::frame);
    CHECK(sealed->size() == frame_overhead + 9);
    auto opened = l.server.open(*sealed);
    REQUIRE(opened);
    CHECK(*opened == text("request " + std::to_string(i)));
    auto back = l.server.seal(text("answer"));
    REQUIRE(back);
    auto got = l.client.open(*back);
    REQUIRE(got);
    CHECK(*got == text("answer"));
  }
  // An empty message seals too.
  auto empty = l.client.seal(wire_bytes{});
  REQUIRE(empty);
  CHECK(l.server.open(*empty)->empty());
  CHECK(l.client.sent() == 4);
  CHECK(l.server.received() == 4);
}

TEST_CASE("link messages are never a Cap'n Proto message, and plain bytes "
          "have no link kind") {
  auto c = creds(1);
  initiator ini;
  auto hello = ini.hello(c);
  uint32_t first_word = 0;
  std::memcpy(&first_word, hello.data(), 4);
  CHECK(first_word >= 512); // Cap'n Proto refuses more than 512 segments
  CHECK(!kind_of(wire_bytes(8, '\0')));
  CHECK(!kind_of(wire_bytes{'m', 'l', 'k'}));
  CHECK(!kind_of(wire_bytes{'m', 'l', 'k', 9}));
  CHECK(!session_of(hello));
}

TEST_CASE("a responder with another PSK refuses the ClientHello") {
  auto c = creds(1);
  auto s = creds(2);
  initiator ini;
  auto accepted = responder::accept(s, ini.hello(c));
  REQUIRE(!accepted);
  check_refused(accepted.error());
}

TEST_CASE("an initiator refuses a responder with another PSK") {
  // The responder got the initiator's MAC right once (a replayed hello)
  // but cannot prove the PSK over this transcript.
  auto c = creds(1);
  auto s = creds(1);
  auto rogue = creds(2);
  initiator ini;
  auto hello = ini.hello(c);
  auto accepted = responder::accept(s, hello);
  REQUIRE(accepted);
  // A rogue answers in its place with its own PSK.
  initiator other;
  auto rogue_hello = other.hello(rogue);
  auto rogue_answer = responder::accept(rogue, rogue_hello);
  REQUIRE(rogue_answer);
  auto fin = ini.finish(c, rogue_answer->second);
  REQUIRE(!fin);
  check_refused(fin.error());
}

TEST_CASE("a ClientFinish without the PSK is refused and the handshake "
          "still completes") {
  auto c = creds(3);
  auto s = creds(3);
  initiator ini;
  auto accepted = responder::accept(s, ini.hello(c));
  REQUIRE(accepted);
  auto fin = ini.finish(c, accepted->second);
  REQUIRE(fin);
  auto forged = fin->first;
  forged[30] ^= 1; // inside the proof
  auto bad = accepted->first.finish(forged);
  REQUIRE(!bad);
  check_refused(bad.error());
  CHECK(accepted->first.finish(fin->first));
}

TEST_CASE("any flipped byte of a hello or finish fails the handshake") {
  auto c = creds(4);
  auto s = creds(4);
  // ClientHello: every byte (tag, version, key, ephemeral, nonce, MAC).
  {
    initiator ini;
    auto hello = ini.hello(c);
    for (size_t i = 0; i < hello.size(); ++i) {
      auto x = hello;
      x[i] ^= 0x20;
      INFO("byte " << i);
      CHECK(!responder::accept(s, x));
    }
  }
  // ServerHello: every byte.
  {
    initiator ini;
    auto accepted = responder::accept(s, ini.hello(c));
    REQUIRE(accepted);
    for (size_t i = 0; i < accepted->second.size(); ++i) {
      auto x = accepted->second;
      x[i] ^= 0x20;
      INFO("byte " << i);
      CHECK(!ini.finish(c, x));
    }
    CHECK(ini.finish(c, accepted->second));
  }
  // ClientFinish: every byte.
  {
    initiator ini;
    auto accepted = responder::accept(s, ini.hello(c));
    REQUIRE(accepted);
    auto fin = ini.finish(c, accepted->second);
    REQUIRE(fin);
    for (size_t i = 0; i < fin->first.size(); ++i) {
      auto x = fin->first;
      x[i] ^= 0x20;
      INFO("byte " << i);
      CHECK(!accepted->first.finish(x));
    }
    CHECK(accepted->first.finish(fin->first));
  }
  // Truncated and extended messages.
  initiator ini;
  auto hello = ini.hello(c);
  CHECK(!responder::accept(s, wire_bytes(hello.begin(), hello.end() - 1)));
  hello.push_back(0);
  CHECK(!responder::accept(s, hello));
}

TEST_CASE("a ClientHello claiming another key cannot finish") {
  // A peer holding the PSK claims a victim's ed25519 key: it cannot sign
  // the transcript with it.
  auto victim = creds(5);
  auto rogue = creds(5);
  auto s = creds(5);
  link_credentials claiming{rogue.psk.clone(), rogue.key.clone(), std::nullopt};
  initiator ini;
  auto hello = ini.hello(victim); // carries the victim's id
  auto accepted = responder::accept(s, hello);
  REQUIRE(accepted);
  CHECK(accepted->first.claimed_peer() == victim.key.id());
  auto fin = ini.finish(claiming, accepted->second); // signs as the rogue
  REQUIRE(fin);
  auto done = accepted->first.finish(fin->first);
  REQUIRE(!done);
  check_refused(done.error());
}

TEST_CASE("a replayed handshake fails: an old ClientFinish against a new "
          "ServerHello") {
  auto c = creds(6);
  auto s = creds(6);
  initiator ini;
  auto hello = ini.hello(c);
  auto first = responder::accept(s, hello);
  REQUIRE(first);
  auto fin = ini.finish(c, first->second);
  REQUIRE(fin);
  REQUIRE(first->first.finish(fin->first));
  // A recorder replays the captured hello (its MAC is valid) and the
  // captured finish, as is and with the new session id.
  auto second = responder::accept(s, hello);
  REQUIRE(second);
  CHECK(second->first.id() != first->first.id());
  auto replay = second->first.finish(fin->first);
  REQUIRE(!replay);
  check_refused(replay.error());
  auto patched = fin->first;
  std::memcpy(patched.data() + 4, second->first.id().data(), 16);
  replay = second->first.finish(patched);
  REQUIRE(!replay);
  check_refused(replay.error());
}

TEST_CASE("a replayed or reordered frame fails and the next genuine one "
          "opens") {
  auto c = creds(8);
  auto s = creds(8);
  auto l = handshake(c, s);
  auto f0 = *l.client.seal(text("zero"));
  auto f1 = *l.client.seal(text("one"));
  auto f2 = *l.client.seal(text("two"));
  // Reordered: 1 before 0.
  check_refused(l.server.open(f1).error());
  REQUIRE(l.server.open(f0));
  // Replayed: 0 again.
  check_refused(l.server.open(f0).error());
  // Dropped: 2 without 1.
  check_refused(l.server.open(f2).error());
  REQUIRE(l.server.open(f1));
  REQUIRE(l.server.open(f2));
  check_refused(l.server.open(f2).error());
  // A frame of one direction does not open in the other.
  auto back = *l.server.seal(text("x"));
  check_refused(l.server.open(back).error());
  CHECK(l.client.open(back));
}

TEST_CASE("a frame from another session fails") {
  auto c = creds(9);
  auto s = creds(9);
  auto a = handshake(c, s);
  auto b = handshake(c, s);
  auto f = *a.client.seal(text("for a"));
  check_refused(b.server.open(f).error());
  // Even relabelled with b's session id.
  auto relabelled = f;
  std::memcpy(relabelled.data() + 4, b.server.id().data(), 16);
  check_refused(b.server.open(relabelled).error());
  CHECK(a.server.open(f));
}

TEST_CASE("a bit flip anywhere in a frame, or a truncated frame, fails") {
  auto c = creds(10);
  auto s = creds(10);
  auto l = handshake(c, s);
  auto f = *l.client.seal(text("the payload of one frame"));
  for (size_t i = 0; i < f.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      auto x = f;
      x[i] ^= static_cast<char>(1 << bit);
      INFO("byte " << i << " bit " << bit);
      CHECK(!l.server.open(x));
    }
  for (size_t n = 0; n < f.size(); ++n)
    CHECK(!l.server.open(wire_bytes(f.begin(), f.begin() + n)));
  CHECK(l.server.open(f));
}

TEST_CASE("a pinned responder id that does not match fails the handshake") {
  auto s = creds(11);
  auto other = keypair::generate();
  auto c = creds(11, other.id());
  initiator ini;
  auto accepted = responder::accept(s, ini.hello(c));
  REQUIRE(accepted);
  auto fin = ini.finish(c, accepted->second);
  REQUIRE(!fin);
  check_refused(fin.error());
  CHECK(describe(fin.error()).find(to_hex(other.id())) != std::string::npos);
  // The right pin passes.
  auto pinned = creds(11, s.key.id());
  initiator again;
  auto ok = responder::accept(s, again.hello(pinned));
  REQUIRE(ok);
  CHECK(again.finish(pinned, ok->second));
}

TEST_CASE("link layer cost: handshake and 64 KiB frames", "[.bench]") {
  using clock = std::chrono::steady_clock;
  auto c = creds(12);
  auto s = creds(12);
  constexpr int handshakes = 200;
  auto start = clock::now();
  for (int i = 0; i < handshakes; ++i)
    (void)handshake(c, s);
  auto hs = std::chrono::duration<double, std::micro>(clock::now() - start)
              .count()
            / handshakes;
  auto l = handshake(c, s);
  wire_bytes payload(64 * 1024, 'x');
  constexpr int frames = 2000;
  start = clock::now();
  for (int i = 0; i < frames; ++i) {
    auto sealed = l.client.seal(payload);
    auto opened = l.server.open(*sealed);
    REQUIRE(opened);
  }
  auto per = std::chrono::duration<double, std::micro>(clock::now() - start)
               .count()
             / frames;
  std::printf("link: handshake %.1f us (both ends, in process); seal+open of "
              "a 64 KiB frame %.1f us (%.0f MiB/s)\n",
              hs, per, 64.0 / 1024.0 / (per / 1e6));
}
