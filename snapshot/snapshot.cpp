#include "snapshot/snapshot.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/orphan.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>
#include <xxhash.h>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.capnp.h"

// Decoding is a sequence of checks, cheapest and least trusting first. Every
// Cap'n Proto accessor may throw kj::Exception on a malformed pointer (that is
// how Cap'n Proto reports bad input when exceptions are enabled), so the whole
// walk runs inside one try block in decode_snapshot() and any such exception
// becomes corrupt_data. Nothing else in here throws on bad input.

namespace mesh {

namespace {

constexpr size_t word_bytes = sizeof(capnp::word);

/// A flat single-segment message is at least the segment table word and the
/// root pointer word.
constexpr size_t min_message_bytes = 2 * word_bytes;

constexpr size_t signature_bytes = std::tuple_size<signature>::value;
constexpr size_t entity_id_bytes = std::tuple_size<entity_id>::value;

/// Each word of a message may be visited a few times (the canonical-form walk,
/// then the field reads); anything beyond that is an amplification attack
/// (many pointers to the same data) and is stopped by the traversal limit.
constexpr uint64_t traversal_words_per_word = 4;
constexpr uint64_t traversal_slack_words = 64;

/// The schema nests two levels deep (Snapshot -> List(DedupMark) -> DedupMark);
/// 16 leaves room for future fields and stops pointer chains long before the
/// stack is at risk.
constexpr int nesting_limit = 16;

caf::error corrupt(std::string what) {
  return make_error(errc::corrupt_data, "snapshot: " + std::move(what));
}

capnp::ReaderOptions reader_options(size_t words) {
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = words * traversal_words_per_word
                               + traversal_slack_words;
  opts.nestingLimit = nesting_limit;
  return opts;
}

/// Checks the framing of a flat message before Cap'n Proto sees it: a whole
/// number of words, one segment, and a segment table that accounts for every
/// byte. Trailing bytes would make two different byte strings name the same
/// snapshot, so they are malformed too.
caf::error check_frame(bytes_view msg, const char* what) {
  if (msg.size < min_message_bytes)
    return corrupt(std::string{what} + " is " + std::to_string(msg.size)
                   + " bytes, shorter than the "
                   + std::to_string(min_message_bytes) + "-byte minimum");
  if (msg.size % word_bytes != 0)
    return corrupt(std::string{what} + " length " + std::to_string(msg.size)
                   + " is not a multiple of 8");
  auto segments = uint64_t{load_le32(msg.data)} + 1;
  if (segments != 1)
    return corrupt(std::string{what} + " has " + std::to_string(segments)
                   + " segments, expected 1");
  auto segment_words = uint64_t{load_le32(msg.data + 4)};
  auto available_words = msg.size / word_bytes - 1;
  if (segment_words != available_words)
    return corrupt(std::string{what} + " segment table says "
                   + std::to_string(segment_words) + " words, found "
                   + std::to_string(available_words));
  return {};
}

/// A word-aligned view of `msg` (whose size is a multiple of 8). Borrows
/// `msg` when it is aligned; otherwise copies it into `storage`, which then
/// owns the words the view points to.
kj::ArrayPtr<const capnp::word> aligned_words(bytes_view msg,
                                              kj::Array<capnp::word>& storage) {
  auto count = msg.size / word_bytes;
  if (reinterpret_cast<uintptr_t>(msg.data) % alignof(capnp::word) == 0)
    return {reinterpret_cast<const capnp::word*>(msg.data), count};
  storage = kj::heapArray<capnp::word>(count);
  std::memcpy(storage.begin(), msg.data, msg.size);
  return storage.asPtr();
}

/// A message whose framing check_frame() accepted, parsed with limits.
/// Owns the aligned copy when one was needed; the reader borrows it (or the
/// caller's bytes, which must outlive this object).
class bounded_message {
public:
  explicit bounded_message(bytes_view msg)
    : words_(aligned_words(msg, storage_)),
      reader_(words_, reader_options(words_.size())) {}

  capnp::FlatArrayMessageReader& reader() {
    return reader_;
  }

private:
  kj::Array<capnp::word> storage_;
  kj::ArrayPtr<const capnp::word> words_;
  capnp::FlatArrayMessageReader reader_;
};

bytes_view view_of(capnp::Data::Reader data) {
  return {data.begin(), data.size()};
}

caf::expected<snapshot_kind> read_kind(schema::SnapshotKind kind) {
  switch (kind) {
    case schema::SnapshotKind::LOCAL: return snapshot_kind::local;
    case schema::SnapshotKind::MIGRATION: return snapshot_kind::migration;
  }
  return corrupt("unknown snapshot kind "
                 + std::to_string(static_cast<uint16_t>(kind)));
}

/// Copies every field out of a body whose signature has been verified.
caf::expected<snapshot> read_fields(schema::Snapshot::Reader body,
                                    const entity_id& id) {
  snapshot out;
  out.format_version = body.getFormatVersion();
  auto kind = read_kind(body.getKind());
  if (!kind)
    return std::move(kind.error());
  out.kind = *kind;
  auto daemon_kind = body.getDaemonKind();
  out.daemon_kind.assign(daemon_kind.begin(), daemon_kind.size());
  out.id = id;
  out.through_seq = body.getThroughSeq();
  auto head = body.getChainHead();
  out.head.sequence = head.getSequence();
  out.head.hash = head.getHash();
  auto state = body.getState();
  switch (state.which()) {
    case schema::Snapshot::State::NONE: break;
    case schema::Snapshot::State::BYTES:
      out.state = view_of(state.getBytes()).to_bytes();
      break;
    default:
      return corrupt("unknown state variant "
                     + std::to_string(static_cast<uint16_t>(state.which())));
  }
  out.state_version = body.getStateVersion();
  auto marks = body.getDedupMarks();
  out.dedup_marks.reserve(marks.size());
  for (auto mark : marks)
    out.dedup_marks.push_back(dedup_mark{mark.getProducerId(),
                                         mark.getProducerSeq(),
                                         mark.getAppliedAt()});
  out.created_at_ns = body.getCreatedAtNs();
  out.epoch = body.getEpoch();
  return out;
}

/// Body checks: framing, canonical form, version, entity id, signature, and
/// the caller's expected id, in that order.
caf::expected<snapshot> decode_body(bytes_view body_bytes, const signature& sig,
                                    const entity_id* expected) {
  if (auto err = check_frame(body_bytes, "body"))
    return err;
  bounded_message msg{body_bytes};
  if (!msg.reader().isCanonical())
    return corrupt("body is not in canonical form");
  auto body = msg.reader().getRoot<schema::Snapshot>();
  auto version = body.getFormatVersion();
  if (version != snapshot_format_version)
    return make_error(errc::unsupported_version,
                      "snapshot: format version " + std::to_string(version)
                        + " (this build reads "
                        + std::to_string(snapshot_format_version) + ")");
  auto raw_id = body.getEntityId();
  if (raw_id.size() != entity_id_bytes)
    return corrupt("entity id is " + std::to_string(raw_id.size())
                   + " bytes, expected " + std::to_string(entity_id_bytes));
  entity_id id{};
  std::memcpy(id.data(), raw_id.begin(), id.size());
  if (!verify(id, body_bytes, sig))
    return make_error(errc::bad_signature,
                      "snapshot: signature does not verify for entity "
                        + to_hex(id));
  // The full 32 bytes decide identity; origin hashes are only in the message
  // to help an operator find the daemon.
  if (expected != nullptr && *expected != id)
    return make_error(errc::snapshot_identity_mismatch,
                      "snapshot: taken by entity " + to_hex(id)
                        + " (origin=" + hex_u64(origin_hash(id))
                        + "), expected " + to_hex(*expected)
                        + " (origin=" + hex_u64(origin_hash(*expected)) + ")");
  return read_fields(body, id);
}

caf::expected<snapshot> decode_checked(bytes_view data,
                                       const entity_id* expected) {
  if (data.size > max_snapshot_bytes)
    return corrupt(std::to_string(data.size) + " bytes exceeds the limit of "
                   + std::to_string(max_snapshot_bytes));
  if (auto err = check_frame(data, "message"))
    return err;
  bounded_message msg{data};
  if (!msg.reader().isCanonical())
    return corrupt("message is not in canonical form");
  auto root = msg.reader().getRoot<schema::SignedSnapshot>();
  auto raw_sig = root.getSignature();
  if (raw_sig.size() != signature_bytes)
    return corrupt("signature is " + std::to_string(raw_sig.size())
                   + " bytes, expected " + std::to_string(signature_bytes));
  signature sig{};
  std::memcpy(sig.data(), raw_sig.begin(), sig.size());
  // Data blobs start on a word boundary inside the message, so the body view
  // is as aligned as `data` (and bounded_message copies if not).
  return decode_body(view_of(root.getBody()), sig, expected);
}

bool valid_kind(snapshot_kind kind) {
  return kind == snapshot_kind::local || kind == snapshot_kind::migration;
}

/// A lower bound of the encoded size: the variable-length payloads alone.
size_t payload_bytes(const snapshot& snap) {
  size_t n = snap.daemon_kind.size() + snap.dedup_marks.size() * 24;
  if (snap.state)
    n += snap.state->size();
  return n;
}

caf::error check_encodable(const snapshot& snap, const keypair& signer) {
  if (signer.empty())
    return make_error(errc::invalid_argument, "snapshot: signer holds no key");
  if (signer.id() != snap.id)
    return make_error(errc::invalid_argument,
                      "snapshot: signer " + to_hex(signer.id())
                        + " is not the snapshot's entity " + to_hex(snap.id));
  if (snap.format_version != snapshot_format_version)
    return make_error(errc::invalid_argument,
                      "snapshot: cannot write format version "
                        + std::to_string(snap.format_version)
                        + " (this build writes "
                        + std::to_string(snapshot_format_version) + ")");
  if (!valid_kind(snap.kind))
    return make_error(errc::invalid_argument,
                      "snapshot: unknown kind "
                        + std::to_string(static_cast<unsigned>(snap.kind)));
  if (payload_bytes(snap) > max_snapshot_bytes)
    return make_error(errc::invalid_argument,
                      "snapshot: payload of "
                        + std::to_string(payload_bytes(snap))
                        + " bytes exceeds the limit of "
                        + std::to_string(max_snapshot_bytes));
  return {};
}

schema::SnapshotKind to_schema(snapshot_kind kind) {
  return kind == snapshot_kind::migration ? schema::SnapshotKind::MIGRATION
                                          : schema::SnapshotKind::LOCAL;
}

capnp::Data::Reader data_of(const uint8_t* data, size_t size) {
  return {data, size};
}

bool word_aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % alignof(capnp::word) == 0;
}

/// Fills the body builder. The state is referenced where it lies (it becomes
/// a read-only segment of `msg`, which must not outlive `snap`), so the
/// canonical copy into the output is its only copy.
void fill_body(capnp::MessageBuilder& msg, const snapshot& snap) {
  auto out = msg.initRoot<schema::Snapshot>();
  out.setFormatVersion(snap.format_version);
  out.setKind(to_schema(snap.kind));
  out.setDaemonKind(
    capnp::Text::Reader{snap.daemon_kind.data(), snap.daemon_kind.size()});
  out.setEntityId(data_of(snap.id.data(), snap.id.size()));
  out.setThroughSeq(snap.through_seq);
  auto head = out.initChainHead();
  head.setSequence(snap.head.sequence);
  head.setHash(snap.head.hash);
  if (!snap.state) {
    out.getState().setNone();
  } else if (auto& state = *snap.state;
             !state.empty() && word_aligned(state.data())) {
    out.getState().adoptBytes(msg.getOrphanage().referenceExternalData(
      data_of(state.data(), state.size())));
  } else {
    out.getState().setBytes(data_of(state.data(), state.size()));
  }
  out.setStateVersion(snap.state_version);
  auto marks = out.initDedupMarks(
    static_cast<unsigned>(snap.dedup_marks.size()));
  for (unsigned i = 0; i < marks.size(); ++i) {
    const auto& mark = snap.dedup_marks[i];
    marks[i].setProducerId(mark.producer_id);
    marks[i].setProducerSeq(mark.producer_seq);
    marks[i].setAppliedAt(mark.applied_at);
  }
  out.setCreatedAtNs(snap.created_at_ns);
  out.setEpoch(snap.epoch);
}

/// Writes the canonical form of `root` as a single-segment message (root
/// pointer first) into `space`, which must be zeroed and at least
/// totalSize() + 1 words; returns how many words it used. This is what
/// capnp::canonicalize() does, minus its two full-size temporary arrays
/// (capnp 0.9.2, StructReader::canonicalize in layout.c++): canonical form
/// only ever drops data, so the reader's size bounds the result.
template<class Reader>
size_t write_canonical(Reader root, kj::ArrayPtr<capnp::word> space) {
  capnp::FlatMessageBuilder out{space};
  capnp::_::PointerHelpers<capnp::AnyPointer>::getInternalBuilder(
    out.initRoot<capnp::AnyPointer>())
    .setStruct(capnp::_::PointerHelpers<
                 capnp::FromReader<Reader>>::getInternalReader(root),
               true);
  KJ_ASSERT(out.isCanonical());
  return out.getSegmentsForOutput()[0].size();
}

/// A Cap'n Proto list pointer to `count` bytes `offset` words after the end
/// of the pointer.
uint64_t byte_list_pointer(uint64_t offset, uint64_t count) {
  constexpr uint64_t list_kind = 1;
  constexpr uint64_t byte_elements = 2;
  return list_kind | (offset << 2) | (byte_elements << 32) | (count << 35);
}

/// Where the body message starts in the encoding: after the outer segment
/// table, the root pointer and SignedSnapshot's two pointers.
constexpr size_t body_at = 4 * word_bytes;

} // namespace

// The encoding is built in place, in the one buffer that is returned: the
// canonical body goes straight to its final offset (the state's only copy),
// is signed there, and the outer SignedSnapshot around it is four words of
// header and the signature. That outer message is in canonical form by
// construction: its struct has no data and two non-null pointers, and the
// two blobs follow in pointer order with no gap (docs/formats.md, section 4,
// and "encoding matches the documented layout" in snapshot_test.cpp).
// TODO(perf): what is left on the write path for a state of N bytes: the
// daemon's snapshot() result (its own N-byte allocation; the store actor
// moves it into the rebuild base, daemon_core::take_encoded_snapshot), and
// the output (zeroed, then the state copied in once). Writing the state
// straight into the output would need a snapshot() that writes into a
// caller's buffer. Decoding still copies the state out of the message.
caf::expected<bytes> encode_snapshot(const snapshot& snap,
                                     const keypair& signer) {
  if (auto err = check_encodable(snap, signer))
    return err;
  capnp::MallocMessageBuilder body_builder;
  fill_body(body_builder, snap);
  auto body = body_builder.getRoot<schema::Snapshot>().asReader();
  // The body: its segment table word, then its one segment. check_encodable
  // bounded the payload, so this is at most a few words over the limit.
  auto max_body_words = 1 + body.totalSize().wordCount + 1;
  auto max_size = body_at + max_body_words * word_bytes + signature_bytes;
  bytes out(max_size);
  // operator new aligns for any fundamental type, so the words are aligned.
  if (!word_aligned(out.data()))
    return make_error(errc::invalid_argument,
                      "snapshot: output buffer is not word aligned");
  auto* words = reinterpret_cast<capnp::word*>(out.data());
  auto space = kj::arrayPtr(words + body_at / word_bytes + 1,
                            max_body_words - 1);
  auto segment_words = write_canonical(body, space);
  auto* body_bytes = out.data() + body_at;
  store_le32(body_bytes, 0);
  store_le32(body_bytes + 4, static_cast<uint32_t>(segment_words));
  auto body_size = (1 + segment_words) * word_bytes;
  auto size = body_at + body_size + signature_bytes;
  if (size > max_snapshot_bytes)
    return make_error(errc::invalid_argument,
                      "snapshot: encoding of " + std::to_string(size)
                        + " bytes exceeds the limit of "
                        + std::to_string(max_snapshot_bytes));
  auto sig = signer.sign({body_bytes, body_size});
  store_le32(out.data(), 0);
  store_le32(out.data() + 4, static_cast<uint32_t>(size / word_bytes - 1));
  // Root: a struct pointer, offset 0, no data words, two pointers.
  store_le64(out.data() + 8, uint64_t{2} << 48);
  store_le64(out.data() + 16, byte_list_pointer(1, body_size));
  store_le64(out.data() + 24,
             byte_list_pointer(body_size / word_bytes, signature_bytes));
  std::memcpy(body_bytes + body_size, sig.data(), sig.size());
  out.resize(size);
  return out;
}

caf::expected<snapshot> decode_snapshot(bytes_view data,
                                        const entity_id* expected) {
  try {
    return decode_checked(data, expected);
  } catch (const kj::Exception& e) {
    return corrupt("malformed Cap'n Proto data: "
                   + std::string{e.getDescription().cStr()});
  }
}

caf::expected<uint64_t> peek_through_seq(bytes_view data) {
  try {
    if (data.size > max_snapshot_bytes)
      return corrupt(std::to_string(data.size) + " bytes exceeds the limit of "
                     + std::to_string(max_snapshot_bytes));
    if (auto err = check_frame(data, "message"))
      return err;
    bounded_message msg{data};
    auto body_bytes = view_of(
      msg.reader().getRoot<schema::SignedSnapshot>().getBody());
    if (auto err = check_frame(body_bytes, "body"))
      return err;
    bounded_message body{body_bytes};
    return body.reader().getRoot<schema::Snapshot>().getThroughSeq();
  } catch (const kj::Exception& e) {
    return corrupt("malformed Cap'n Proto data: "
                   + std::string{e.getDescription().cStr()});
  }
}

uint64_t snapshot_hash(bytes_view encoded) {
  return XXH3_64bits(encoded.data, encoded.size);
}

} // namespace mesh
