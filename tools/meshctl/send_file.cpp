// meshctl send ID --from-file FILE: streams one event per line in batches.
//
// Exactly-once across runs: with --producer-file the producer id is stable
// (a nonce file) and line N is always sent as producer_seq N. Re-running the
// same command after any failure therefore resends lines the node already
// applied under the same (producer_id, producer_seq), and the node answers
// them as duplicates instead of applying them twice. Before sending, the
// node's high-water mark for the producer is asked so that the lines it
// already applied are not sent at all. The stream itself is a
// mesh::producer (mesh/client.hpp): --window batches in flight, in order.

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
  file_sender(session& s, const send_args& args)
    : s_(s),
      args_(args),
      prog_(s.err, std::chrono::seconds{args.progress_every}) {}

  // Streams `in` through `p`, which skips the lines its high-water mark
  // covers.
  int run(std::istream& in, producer& p) {
    p_ = &p;
    std::string line;
    while (std::getline(in, line)) {
      bytes payload;
      if (!args_.hex) {
        payload.assign(line.begin(), line.end());
      } else if (!from_hex(line, payload)) {
        // Not pushed: the lines before it still go out and are confirmed.
        auto code = finish_after(p.flush());
        if (code != exit_ok)
          return code;
        s_.err << "meshctl: line " << p.progress().pushed + 1 << " of "
               << args_.from_file << " is not valid hex (applied through line "
               << confirmed() << ")" << std::endl;
        return exit_usage;
      }
      if (auto err = p.push(std::move(payload)))
        return failed(err);
      update();
    }
    if (in.bad()) {
      auto code = finish_after(p.flush());
      if (code != exit_ok)
        return code;
      s_.err << "meshctl: cannot read " << args_.from_file << " after line "
             << p.progress().pushed << ": " << std::strerror(errno)
             << " (applied through line " << confirmed() << ")" << std::endl;
      return exit_usage;
    }
    if (p.high_water() > p.progress().pushed) {
      // Every line was "applied before", yet the node has applied more of
      // this producer than the file holds: another stream used the same
      // producer id, so none of these lines may have been applied at all.
      prog_.finish();
      s_.err << "meshctl: the node's high-water mark " << p.high_water()
             << " for producer " << hex_u64(p.id()) << " is past the end of "
             << args_.from_file << " (" << p.progress().pushed
             << " lines): nothing sent; was the producer file "
             << args_.producer_file << " used for another stream?" << std::endl;
      return exit_usage;
    }
    if (auto code = finish_after(p.flush()); code != exit_ok)
      return code;
    prog_.finish();
    return summary();
  }

  // What the producer reports for each confirmed batch.
  void on_batch(const send_request& batch, const std::vector<delivery>& ds) {
    for (size_t i = 0; i < ds.size(); ++i)
      account(batch.events[i].producer_seq, ds[i]);
  }

private:
  uint64_t confirmed() const {
    return p_->progress().confirmed_through;
  }

  void update() {
    const auto& pr = p_->progress();
    c_.lines = pr.pushed;
    c_.sent = pr.sent;
    c_.applied = pr.applied;
    c_.duplicates = pr.duplicates + pr.skipped;
    c_.skipped = pr.skipped;
    c_.confirmed_through = pr.confirmed_through;
    prog_.update(c_);
  }

  int finish_after(const caf::error& err) {
    if (err)
      return failed(err);
    return exit_ok;
  }

  // The stream stopped at a batch the node did not confirm.
  int failed(const caf::error& err) {
    prog_.finish();
    if (is(err, errc::target_unavailable) || is(err, errc::timeout)) {
      auto what = is(err, errc::target_unavailable)
                    ? "node " + s_.client.route_of(args_.daemon_id)
                        + " went away"
                    : describe(err);
      s_.err << "meshctl: " << what << " after line " << p_->progress().pushed
             << " (applied through " << confirmed() << ")" << std::endl;
      return exit_unreachable;
    }
    s_.err << "meshctl: " << describe(err) << " (applied through "
           << confirmed() << ")" << std::endl;
    return exit_refused;
  }

  void account(uint64_t line, const delivery& d) {
    if (d.state == delivery::status::rejected && c_.rejected++ == 0) {
      c_.first_rejected_line = line;
      c_.first_rejected_error = d.error;
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
    update();
    const auto& pr = p_->progress();
    if (s_.json) {
      s_.out << "{\"id\":" << json_id(args_.daemon_id)
             << ",\"producer_id\":" << json_id(p_->id())
             << ",\"lines\":" << c_.lines << ",\"sent\":" << c_.sent
             << ",\"applied\":" << c_.applied
             << ",\"duplicates\":" << c_.duplicates
             << ",\"skipped\":" << c_.skipped
             << ",\"high_water\":" << p_->high_water()
             << ",\"rejected\":" << pr.rejected;
      if (pr.rejected > 0)
        s_.out << ",\"first_rejected_line\":" << c_.first_rejected_line
               << ",\"first_rejected_error\":"
               << meshseg::json_string(c_.first_rejected_error);
      s_.out << "}" << std::endl;
    } else {
      s_.out << "sent " << c_.lines << ", applied " << c_.applied
             << ", duplicates " << c_.duplicates << ", rejected "
             << pr.rejected;
      if (c_.skipped > 0)
        s_.out << " (" << c_.skipped
               << " duplicates not resent: the node's high-water mark was "
               << p_->high_water() << ")";
      s_.out << std::endl;
    }
    if (pr.rejected > 0) {
      s_.err << "meshctl: " << pr.rejected
             << " event(s) rejected, first at line " << c_.first_rejected_line
             << ": " << c_.first_rejected_error << std::endl;
      return exit_refused;
    }
    return exit_ok;
  }

  session& s_;
  const send_args& args_;
  progress prog_;
  producer* p_ = nullptr;
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
  file_sender sender{s, args};
  producer::options opts;
  opts.batch = args.batch;
  opts.window = args.window;
  // Without a producer file nothing was applied before: no mark to ask.
  opts.skip_applied = args.skip_applied && !args.producer_file.empty();
  // Rejected lines are counted and reported in the summary; the stream
  // goes on.
  opts.stop_on_rejected = false;
  opts.on_batch = [&sender](const send_request& b,
                            const std::vector<delivery>& ds) {
    sender.on_batch(b, ds);
  };
  caf::expected<producer> p = make_error(errc::invalid_argument, "no producer");
  if (args.producer_file.empty()) {
    p = producer::with_id(s.client, args.daemon_id, random_producer_id(),
                          std::move(opts));
  } else {
    // The nonce file's own errors are bad input (exit 2), the node's are
    // not: read it first so they can be told apart.
    auto nonce = load_or_create_nonce(args.producer_file);
    if (!nonce) {
      s.err << "meshctl: " << describe(nonce.error()) << std::endl;
      return exit_usage;
    }
    p = producer::with_id(s.client, args.daemon_id, *nonce, std::move(opts));
  }
  if (!p) {
    if (is(p.error(), errc::target_unavailable) || is(p.error(), errc::timeout))
      return report_transport(s, p.error());
    s.err << "meshctl: " << describe(p.error()) << std::endl;
    return exit_refused;
  }
  return sender.run(*in, *p);
}

} // namespace mesh::meshctl
