#include "identity/sodium_init.hpp"

#include <stdexcept>

#include <sodium/core.h>

namespace mesh {

namespace {

bool do_init() {
  // sodium_init returns 1 when already initialized (e.g. by another library
  // in the process): that is success too.
  if (sodium_init() < 0)
    throw std::runtime_error("sodium_init failed: libsodium is unusable");
  return true;
}

} // namespace

void init_sodium() {
  // A throwing initializer leaves the static uninitialized, so a later call
  // retries instead of pretending success.
  static const bool initialized = do_init();
  (void)initialized;
}

} // namespace mesh
