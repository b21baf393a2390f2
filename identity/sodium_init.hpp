#pragma once

namespace mesh {

/// Initializes libsodium exactly once per process. Safe to call from any
/// thread, any number of times; every function of the identity layer calls it
/// before touching libsodium, so other layers need it only when they call
/// libsodium directly. Throws std::runtime_error when libsodium cannot
/// initialize (no usable entropy source): no key can be made safely then.
void init_sodium();

} // namespace mesh
