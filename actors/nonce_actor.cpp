#include "actors/nonce_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <sodium/randombytes.h>

#include "identity/sodium_init.hpp"
#include "persistence/nonce_file.hpp"

namespace mesh {

namespace {

struct nonce_state {
  std::string path;
  uint64_t id = 0;
  static inline const char* name = "mesh.nonce";
};

nonce_actor::behavior_type
nonce_impl(nonce_actor::stateful_pointer<nonce_state> self, std::string path) {
  self->state.path = std::move(path);
  return {
    [=](producer_id_atom) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.id != 0)
        return st.id;
      if (st.path.empty()) {
        init_sodium();
        while (st.id == 0)
          randombytes_buf(&st.id, sizeof(st.id));
        return st.id;
      }
      auto id = load_or_create_nonce(st.path);
      if (!id)
        return id.error();
      st.id = *id;
      return st.id;
    },
  };
}

} // namespace

nonce_actor spawn_nonce_actor(caf::actor_system& sys, std::string path) {
  // Detached: the first request reads or creates (and fsyncs) the nonce
  // file, blocking disk I/O that must not run on a scheduler thread. The
  // thread idles after that.
  return sys.spawn<caf::detached>(nonce_impl, std::move(path));
}

} // namespace mesh
