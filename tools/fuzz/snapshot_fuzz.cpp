// libFuzzer target for the snapshot decoder (tools/fuzz/README.md).
//
// Contract under test: decode_snapshot() returns a snapshot or one of its
// documented errors for every byte string; it never crashes, throws, leaks or
// hits undefined behaviour (the build adds ASan and UBSan). A violation of the
// error contract aborts so libFuzzer keeps the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/errc.hpp"
#include "snapshot/snapshot.hpp"

namespace {

bool documented(mesh::errc code) {
  return code == mesh::errc::corrupt_data || code == mesh::errc::bad_signature
         || code == mesh::errc::unsupported_version;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mesh::bytes_view input{data, size};
  auto dec = mesh::decode_snapshot(input);
  if (!dec) {
    if (!documented(mesh::code_of(dec.error())))
      std::abort();
    return 0;
  }
  // Whatever decodes was signed by the key inside it, so naming that key as
  // the expected one must change nothing, and it is the current format.
  if (dec->format_version != mesh::snapshot_format_version)
    std::abort();
  auto id = dec->id;
  auto again = mesh::decode_snapshot(input, &id);
  if (!again || again->through_seq != dec->through_seq
      || again->dedup_marks != dec->dedup_marks)
    std::abort();
  return 0;
}
