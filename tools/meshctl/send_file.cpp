// meshctl send ID --from-file FILE: streams one event per line in batches.
//
// Exactly-once across runs: with --producer-file the producer id is stable
// (a nonce file) and line N is always sent as producer_seq N. Re-running the
// same command after any failure therefore resends lines the node already
// applied under the same (producer_id, producer_seq), and the node answers
// them as duplicates instead of applying them twice. Before sending, the
// node's high-water mark for the producer is asked so that the lines it
// already applied are not sent at all.

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "persistence/nonce_file.hpp"
#include "tools/meshctl/ask.hpp"
#include "tools/meshctl/commands.hpp"
#include "tools/meshseg/render.hpp"

namespace mesh::meshctl {

using namespace mesh::control;

namespace {

using clock_type = std::chrono::steady_clock;

struct counts {
  /// Lines read from the file so far.
  uint64_t lines = 0;
  /// Events sent to the node.
  uint64_t sent = 0;
  uint64_t applied = 0;
  /// Includes the lines skipped because of the high-water mark.
  uint64_t duplicates = 0;
  uint64_t skipped = 0;
  uint64_t rejected = 0;
  uint64_t first_rejected_line = 0;
  std::string first_rejected_error;
  /// Every line up to here has been applied (or was applied before).
  uint64_t confirmed_through = 0;
};

// Progress on stderr: a self-overwriting line on a terminal, otherwise one
// line every `every` seconds (logs stay readable).
class progress {
public:
  progress(std::ostream& err, std::chrono::seconds every)
    : err_(err),
      tty_(::isatty(STDERR_FILENO) == 1),
      every_(every),
      start_(clock_type::now()),
      last_(start_) {}

  void update(const counts& c) {
    auto now = clock_type::now();
    auto period = tty_ ? std::chrono::milliseconds{200}
                       : std::chrono::duration_cast<std::chrono::milliseconds>(
                         every_);
    if (period.count() == 0 || now - last_ < period)
      return;
    last_ = now;
    if (tty_) {
      err_ << '\r' << text(c, now) << "\033[K" << std::flush;
      drawn_ = true;
    } else {
      err_ << "meshctl: progress: " << text(c, now) << std::endl;
    }
  }

  void finish() {
    if (drawn_)
      err_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }

private:
  std::string text(const counts& c, clock_type::time_point now) const {
    auto secs = std::chrono::duration<double>(now - start_).count();
    auto rate = secs > 0 ? static_cast<uint64_t>(c.sent / secs) : 0;
    return "line " + std::to_string(c.lines) + ": applied "
           + std::to_string(c.applied) + ", duplicates "
           + std::to_string(c.duplicates) + ", rejected "
           + std::to_string(c.rejected) + " (" + std::to_string(rate)
           + " events/s)";
  }

  std::ostream& err_;
  bool tty_;
  std::chrono::seconds every_;
  clock_type::time_point start_;
  clock_type::time_point last_;
  bool drawn_ = false;
};

uint64_t random_producer_id() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0)
    id = (static_cast<uint64_t>(rd()) << 32) | rd();
  return id;
}

class file_sender {
public:
  file_sender(session& s, const send_args& args, uint64_t producer)
    : s_(s),
      args_(args),
      prog_(s.err, std::chrono::seconds{args.progress_every}) {
    batch_.daemon_id = args.daemon_id;
    producer_ = producer;
  }

  // Streams `in`, skipping lines through `high_water`.
  int run(std::istream& in, uint64_t high_water) {
    high_water_ = high_water;
    std::string line;
    while (std::getline(in, line)) {
      auto n = ++c_.lines;
      if (n <= high_water) {
        ++c_.skipped;
        ++c_.duplicates;
        c_.confirmed_through = n;
        continue;
      }
      inbound_event ev{producer_, n, {}};
      if (!args_.hex) {
        ev.payload.assign(line.begin(), line.end());
      } else if (!from_hex(line, ev.payload)) {
        prog_.finish();
        s_.err << "meshctl: line " << n << " of " << args_.from_file
               << " is not valid hex (applied through line "
               << c_.confirmed_through << ")" << std::endl;
        return exit_usage;
      }
      batch_.events.push_back(std::move(ev));
      if (batch_.events.size() >= args_.batch)
        if (auto code = flush(); code != exit_ok)
          return code;
      prog_.update(c_);
    }
    if (in.bad()) {
      prog_.finish();
      s_.err << "meshctl: cannot read " << args_.from_file << " after line "
             << c_.lines << ": " << std::strerror(errno)
             << " (applied through line " << c_.confirmed_through << ")"
             << std::endl;
      return exit_usage;
    }
    if (high_water_ > c_.lines) {
      // Every line was "applied before", yet the node has applied more of
      // this producer than the file holds: another stream used the same
      // producer id, so none of these lines may have been applied at all.
      prog_.finish();
      s_.err << "meshctl: the node's high-water mark " << high_water_
             << " for producer " << hex_u64(producer_) << " is past the end of "
             << args_.from_file << " (" << c_.lines
             << " lines): nothing sent; was the producer file "
             << args_.producer_file << " used for another stream?" << std::endl;
      return exit_usage;
    }
    if (auto code = flush(); code != exit_ok)
      return code;
    prog_.finish();
    return summary();
  }

private:
  int flush() {
    if (batch_.events.empty())
      return exit_ok;
    auto first = batch_.events.front().producer_seq;
    auto last = batch_.events.back().producer_seq;
    auto res = s_.client.call(batch_);
    if (!res) {
      prog_.finish();
      auto what = is(res.error(), errc::target_unavailable)
                    ? "node " + s_.client.address() + " went away"
                    : describe(res.error());
      s_.err << "meshctl: " << what << " after line " << last
             << " (applied through " << c_.confirmed_through << ")"
             << std::endl;
      return exit_unreachable;
    }
    if (auto* err = std::get_if<error_response>(&*res)) {
      prog_.finish();
      s_.err << "meshctl: " << describe(to_error(*err)) << " (sending lines "
             << first << ".." << last << "; applied through "
             << c_.confirmed_through << ")" << std::endl;
      return exit_refused;
    }
    if (auto* moved = std::get_if<moved_response>(&*res)) {
      prog_.finish();
      s_.err << "meshctl: sending lines " << first << ".." << last
             << " (applied through " << c_.confirmed_through << "): ";
      s_.err.flush();
      return report_moved(s_, *moved);
    }
    auto* ok = std::get_if<send_response>(&*res);
    if (ok == nullptr || ok->deliveries.size() != batch_.events.size()) {
      prog_.finish();
      s_.err << "meshctl: the node answered lines " << first << ".." << last
             << " with a malformed response (applied through "
             << c_.confirmed_through << ")" << std::endl;
      return exit_refused;
    }
    c_.sent += batch_.events.size();
    for (size_t i = 0; i < ok->deliveries.size(); ++i)
      account(batch_.events[i].producer_seq, ok->deliveries[i]);
    c_.confirmed_through = last;
    batch_.events.clear();
    return exit_ok;
  }

  void account(uint64_t line, const delivery& d) {
    switch (d.state) {
      case delivery::status::applied: ++c_.applied; break;
      case delivery::status::duplicate: ++c_.duplicates; break;
      case delivery::status::rejected:
        if (c_.rejected++ == 0) {
          c_.first_rejected_line = line;
          c_.first_rejected_error = d.error;
        }
        break;
    }
    if (!args_.print_outputs)
      return;
    for (const auto& o : d.outputs) {
      if (s_.json)
        s_.out << "{\"line\":" << line << ",\"sequence\":" << o.link.sequence
               << "," << json_payload_fields(o.payload) << "}\n";
      else
        s_.out << render_payload(o.payload) << '\n';
    }
  }

  int summary() {
    if (s_.json) {
      s_.out << "{\"id\":" << json_id(args_.daemon_id)
             << ",\"producer_id\":" << json_id(producer_)
             << ",\"lines\":" << c_.lines << ",\"sent\":" << c_.sent
             << ",\"applied\":" << c_.applied
             << ",\"duplicates\":" << c_.duplicates
             << ",\"skipped\":" << c_.skipped
             << ",\"high_water\":" << high_water_
             << ",\"rejected\":" << c_.rejected;
      if (c_.rejected > 0)
        s_.out << ",\"first_rejected_line\":" << c_.first_rejected_line
               << ",\"first_rejected_error\":"
               << meshseg::json_string(c_.first_rejected_error);
      s_.out << "}" << std::endl;
    } else {
      s_.out << "sent " << c_.lines << ", applied " << c_.applied
             << ", duplicates " << c_.duplicates << ", rejected "
             << c_.rejected;
      if (c_.skipped > 0)
        s_.out << " (" << c_.skipped
               << " duplicates not resent: the node's high-water mark was "
               << high_water_ << ")";
      s_.out << std::endl;
    }
    if (c_.rejected > 0) {
      s_.err << "meshctl: " << c_.rejected
             << " event(s) rejected, first at line " << c_.first_rejected_line
             << ": " << c_.first_rejected_error << std::endl;
      return exit_refused;
    }
    return exit_ok;
  }

  session& s_;
  const send_args& args_;
  progress prog_;
  send_request batch_;
  uint64_t producer_ = 0;
  uint64_t high_water_ = 0;
  counts c_;
};

} // namespace

int run_send_file(session& s, const send_args& args) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (args.from_file != "-") {
    file.open(args.from_file, std::ios::binary);
    if (!file) {
      s.err << "meshctl: cannot open " << args.from_file << ": "
            << std::strerror(errno) << std::endl;
      return exit_usage;
    }
    in = &file;
  }
  uint64_t producer = 0;
  uint64_t high_water = 0;
  if (args.producer_file.empty()) {
    producer = random_producer_id();
  } else {
    auto nonce = load_or_create_nonce(args.producer_file);
    if (!nonce) {
      s.err << "meshctl: " << describe(nonce.error()) << std::endl;
      return exit_usage;
    }
    producer = *nonce;
    if (args.skip_applied) {
      int code = exit_ok;
      auto hw = ask<high_water_response>(s,
                                         high_water_request{args.daemon_id,
                                                            producer},
                                         code);
      if (!hw)
        return code;
      high_water = hw->producer_seq;
    }
  }
  file_sender sender{s, args, producer};
  return sender.run(*in, high_water);
}

} // namespace mesh::meshctl
