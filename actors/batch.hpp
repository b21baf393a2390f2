#pragma once

// Packed batches: the events of one deliver_batch call and their answers,
// each in a few flat buffers instead of one heap allocation per event and
// per output (the way leveldb::WriteBatch keeps a batch in one string).
//
// A batch of 100 small events built with std::vector<inbound_event> costs
// about 400 allocations on the way in and out, most of them freed on another
// thread than the one that made them; that, not the daemon's own work, was
// most of the cost of a batched delivery. An event_batch or delivery_batch
// that is cleared and refilled allocates nothing once its buffers are large
// enough.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.hpp"
#include "snapshot/causal.hpp"

namespace mesh {

/// One event from a producer. producer_id 0 = anonymous: no deduplication.
struct inbound_event {
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  bytes payload;
};

/// The answer for one inbound event.
struct delivery {
  enum class status : uint8_t { applied, duplicate, rejected };
  status state = status::applied;
  /// applied: the daemon_seq assigned; duplicate: the daemon_seq it was
  /// applied at (0 when older than the remembered window); rejected: the
  /// daemon_seq it was recorded at.
  uint64_t daemon_seq = 0;
  /// rejected: why.
  std::string error;
  std::vector<causal_event> outputs;
};

/// One event of an event_batch. `payload` points into the batch.
struct event_ref {
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  bytes_view payload;
};

/// Events for one daemon, in order. Adding an event copies its payload into
/// the batch's buffer.
class event_batch {
public:
  struct header {
    uint64_t producer_id = 0;
    uint64_t producer_seq = 0;
    size_t offset = 0;
    size_t size = 0;
  };

  event_batch() = default;

  /// Converts (copies) a vector of events.
  explicit event_batch(const std::vector<inbound_event>& evs);

  void add(uint64_t producer_id, uint64_t producer_seq, bytes_view payload);
  void add(const inbound_event& ev) {
    add(ev.producer_id, ev.producer_seq, ev.payload);
  }

  /// Room for `events` events with `payload_bytes` bytes of payload.
  void reserve(size_t events, size_t payload_bytes);

  /// Empties the batch and keeps its buffers.
  void clear();

  size_t size() const {
    return headers_.size();
  }
  bool empty() const {
    return headers_.empty();
  }
  event_ref operator[](size_t i) const {
    auto& h = headers_[i];
    return {h.producer_id, h.producer_seq,
            bytes_view{data_.data() + h.offset, h.size}};
  }

  /// Total payload bytes.
  size_t payload_bytes() const {
    return data_.size();
  }

  /// Every event's payload lies inside the buffer. Always true for a batch
  /// built with add(); checked for one that was deserialized.
  bool well_formed() const;

  // For serialization (inspect) only.
  std::vector<header>& headers() {
    return headers_;
  }
  bytes& data() {
    return data_;
  }

private:
  std::vector<header> headers_;
  bytes data_;
};

/// One output of a delivery_batch. `payload` points into the batch.
struct output_ref {
  causal_link link;
  bytes_view payload;
  uint64_t received_at_ns = 0;
};

/// The answers to an event_batch: for event i its status, daemon_seq, error
/// text (rejected only) and outputs, in order.
class delivery_batch {
public:
  struct result {
    delivery::status state = delivery::status::applied;
    uint64_t daemon_seq = 0;
    size_t error_offset = 0;
    size_t error_size = 0;
    /// outputs_[first_output, first_output + output_count)
    size_t first_output = 0;
    size_t output_count = 0;
  };

  struct output {
    causal_link link;
    uint64_t received_at_ns = 0;
    size_t offset = 0;
    size_t size = 0;
  };

  /// Room for `events` results with `outputs` outputs in total.
  void reserve(size_t events, size_t outputs, size_t data_bytes);

  /// Empties the batch and keeps its buffers.
  void clear();

  // -- building (the daemon, in event order) -------------------------------

  /// Starts the answer to the next event.
  void begin(delivery::status state, uint64_t daemon_seq);
  /// Sets the current answer's state and daemon_seq.
  void set_state(delivery::status state, uint64_t daemon_seq);
  /// Sets the current answer's error text.
  void set_error(std::string_view text);
  /// Appends an output to the current answer.
  void add_output(const causal_link& link, bytes_view payload,
                  uint64_t received_at_ns);

  // -- reading -------------------------------------------------------------

  size_t size() const {
    return results_.size();
  }
  bool empty() const {
    return results_.empty();
  }
  delivery::status state(size_t i) const {
    return results_[i].state;
  }
  uint64_t daemon_seq(size_t i) const {
    return results_[i].daemon_seq;
  }
  std::string_view error(size_t i) const {
    auto& r = results_[i];
    return {reinterpret_cast<const char*>(data_.data()) + r.error_offset,
            r.error_size};
  }
  size_t output_count(size_t i) const {
    return results_[i].output_count;
  }
  /// Output k of event i.
  output_ref output_at(size_t i, size_t k) const {
    auto& o = outputs_[results_[i].first_output + k];
    return {o.link, bytes_view{data_.data() + o.offset, o.size},
            o.received_at_ns};
  }

  /// Event i's answer as a self-contained delivery (copies).
  delivery to_delivery(size_t i) const;
  /// Every answer as deliveries (copies).
  std::vector<delivery> to_deliveries() const;

  // For serialization (inspect) only.
  std::vector<result>& results() {
    return results_;
  }
  std::vector<output>& outputs() {
    return outputs_;
  }
  bytes& data() {
    return data_;
  }

private:
  std::vector<result> results_;
  std::vector<output> outputs_;
  /// Output payloads and error texts, back to back.
  bytes data_;
};

} // namespace mesh
