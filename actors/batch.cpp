#include "actors/batch.hpp"

namespace mesh {

namespace {

/// Appends `src` to `dst`; returns where it starts.
size_t append(bytes& dst, const uint8_t* src, size_t n) {
  auto pos = dst.size();
  // insert, not resize + memcpy: resize would zero the bytes first.
  if (n > 0)
    dst.insert(dst.end(), src, src + n);
  return pos;
}

} // namespace

// -- event_batch --------------------------------------------------------------

event_batch::event_batch(const std::vector<inbound_event>& evs) {
  size_t total = 0;
  for (auto& ev : evs)
    total += ev.payload.size();
  reserve(evs.size(), total);
  for (auto& ev : evs)
    add(ev);
}

void event_batch::add(uint64_t producer_id, uint64_t producer_seq,
                      bytes_view payload) {
  auto offset = append(data_, payload.data, payload.size);
  headers_.push_back({producer_id, producer_seq, offset, payload.size});
}

bool event_batch::well_formed() const {
  for (auto& h : headers_)
    if (h.offset > data_.size() || h.size > data_.size() - h.offset)
      return false;
  return true;
}

void event_batch::reserve(size_t events, size_t payload_bytes) {
  headers_.reserve(events);
  data_.reserve(payload_bytes);
}

void event_batch::clear() {
  headers_.clear();
  data_.clear();
}

// -- delivery_batch -----------------------------------------------------------

void delivery_batch::reserve(size_t events, size_t outputs, size_t data_bytes) {
  results_.reserve(events);
  outputs_.reserve(outputs);
  data_.reserve(data_bytes);
}

void delivery_batch::clear() {
  results_.clear();
  outputs_.clear();
  data_.clear();
}

void delivery_batch::begin(delivery::status state, uint64_t daemon_seq) {
  auto& r = results_.emplace_back();
  r.state = state;
  r.daemon_seq = daemon_seq;
  r.first_output = outputs_.size();
}

void delivery_batch::set_state(delivery::status state, uint64_t daemon_seq) {
  auto& r = results_.back();
  r.state = state;
  r.daemon_seq = daemon_seq;
}

void delivery_batch::set_error(std::string_view text) {
  auto& r = results_.back();
  r.error_offset = append(data_, reinterpret_cast<const uint8_t*>(text.data()),
                          text.size());
  r.error_size = text.size();
}

void delivery_batch::add_output(const causal_link& link, bytes_view payload,
                                uint64_t received_at_ns) {
  auto offset = append(data_, payload.data, payload.size);
  outputs_.push_back({link, received_at_ns, offset, payload.size});
  results_.back().output_count++;
}

delivery delivery_batch::to_delivery(size_t i) const {
  delivery d;
  d.state = state(i);
  d.daemon_seq = daemon_seq(i);
  d.error = std::string{error(i)};
  auto n = output_count(i);
  d.outputs.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    auto o = output_at(i, k);
    causal_event ev;
    ev.link = o.link;
    ev.payload = o.payload.to_bytes();
    ev.received_at_ns = o.received_at_ns;
    d.outputs.push_back(std::move(ev));
  }
  return d;
}

std::vector<delivery> delivery_batch::to_deliveries() const {
  std::vector<delivery> out;
  out.reserve(size());
  for (size_t i = 0; i < size(); ++i)
    out.push_back(to_delivery(i));
  return out;
}

} // namespace mesh
