// meshseg: offline inspection and repair of a segment log directory.
// Usage and example output: docs/meshseg.md.

#include <charconv>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/meshseg/commands.hpp"

namespace {

using namespace mesh::meshseg;

constexpr const char* main_footer
  = R"(dump and verify never change the files; verify --repair, append and
compact run the segment's recovery first, like meshd does on start.

Exit codes: 0 ok, 1 verify found damage, 2 bad usage, bad input or failure.

Examples:
  meshseg verify /var/lib/meshd/log/0
  meshseg dump /var/lib/meshd/log/0 --json
Run 'meshseg COMMAND --help' for a command's options and examples.)";

constexpr const char* append_footer = R"(Examples:
  meshseg append /var/lib/meshd/log/0 hello world      # two records
  meshseg append --hex /tmp/log 00ff7f                 # one binary record
  meshseg append /tmp/log --from-file events.txt       # one record per line
  printf 'a\nb\n' | meshseg append /tmp/log --from-file -
Payloads starting with '-' go after '--': meshseg append /tmp/log -- -5)";

constexpr const char* dump_footer
  = R"(Prints one line per record that recovery would keep:
  seq=1 time=2025-11-22T20:41:03.123456789Z length=5 text="hello"
  seq=2 time=2025-11-22T20:41:03.123456789Z length=3 hex=00ff7f
With --json, one JSON object per line (JSON lines):
  {"seq":1,"timestamp_ns":...,"time":"...","length":5,"encoding":"text","payload":"hello"}
With --entries (a meshd node's <data>/log), each record is decoded as a log
entry and its fields come before the entry's own payload:
  seq=1 time=... length=54 origin=0x38f636d8c448d6b0 epoch=2 daemon_seq=1 producer=0x0000000000000007/1 status=accepted text="+5"
A record that is not a log entry shows entry_error="..." and its raw payload.
Never changes the files, even when the log is damaged.

Examples:
  meshseg dump /var/lib/meshd/log/0
  meshseg dump /var/lib/meshd/log/0 --json | jq -r .payload
  meshseg dump /var/lib/meshd/data/log --entries)";

constexpr const char* verify_footer
  = R"(Without --repair nothing on disk changes. Exit 0 when intact:
  ok: 10 records, seq 1..10, generation 1
exit 1 when damaged, naming what recovery would drop and why:
  damaged: recovery would drop 1 record (seq 10) and keep 9 records (seq 1..9), generation 1
    - <one line per finding>
--repair runs that recovery (truncating and rewriting files) and exits 0, or 1
when records were lost (the "lost about" line), or when damage remains
that recovery does not repair (records out of seq order, damaged timestamps).
When an orphan generation holds records the live one lacks (a stale manifest,
swapped directories), --repair refuses (exit 1) and names them; --force
deletes them and counts them as dropped.

Examples:
  meshseg verify /var/lib/meshd/log/0
  meshseg verify /var/lib/meshd/log/0 || meshseg verify --repair /var/lib/meshd/log/0)";

constexpr const char* compact_footer
  = R"(Give exactly one of --keep-last, --max-bytes, --max-age. The survivors are
rewritten into a new generation directory and the manifest is flipped
atomically; seqs do not change.

Examples:
  meshseg compact /var/lib/meshd/log/0 --keep-last 1000
  meshseg compact /var/lib/meshd/log/0 --max-bytes 1048576
  meshseg compact /var/lib/meshd/log/0 --max-age 86400   # keep one day)";

// Accepts exactly the decimal numbers that fit a uint64_t: CLI11's own
// conversion saturates on overflow instead of refusing.
CLI::Validator whole_number() {
  return CLI::Validator{[](std::string& text) -> std::string {
                          uint64_t value = 0;
                          const char* end = text.data() + text.size();
                          auto res = std::from_chars(text.data(), end, value);
                          if (text.empty() || res.ec != std::errc{}
                              || res.ptr != end)
                            return "expected a whole number from 0 to "
                                   + std::to_string(UINT64_MAX) + ", got '"
                                   + text + "'";
                          return {};
                        },
                        ""};
}

int run(int argc, char** argv) {
  CLI::App app{"meshseg: offline inspection and repair of a meshd segment log "
               "directory",
               "meshseg"};
  app.footer(main_footer);
  app.require_subcommand(1);

  append_args append;
  auto* append_cmd = app.add_subcommand(
    "append", "Append records to the log in DIR, creating it when missing");
  append_cmd->footer(append_footer);
  append_cmd->add_option("DIR", append.dir, "Log directory")->required();
  auto* payloads = append_cmd->add_option("PAYLOAD", append.payloads,
                                          "Payloads, one record each (text, or "
                                          "hex with --hex)");
  append_cmd
    ->add_option("--from-file", append.from_file,
                 "Append one record per line of FILE ('-' reads stdin)")
    ->type_name("FILE")
    ->excludes(payloads);
  append_cmd->add_flag("--hex", append.hex,
                       "PAYLOADs and lines are hex-encoded bytes");

  dump_args dump;
  auto* dump_cmd = app.add_subcommand("dump", "Print the records recovery "
                                              "would keep (read-only)");
  dump_cmd->footer(dump_footer);
  dump_cmd->add_option("DIR", dump.dir, "Log directory")->required();
  dump_cmd->add_flag("--json", dump.json,
                     "One JSON object per record and line (JSON lines)");
  dump_cmd->add_flag("--entries", dump.entries,
                     "Decode each record as a meshd log entry (origin, "
                     "epoch, daemon_seq, producer, status)");

  verify_args verify;
  auto* verify_cmd = app.add_subcommand(
    "verify", "Check the log; exit 1 and name what recovery would drop");
  verify_cmd->footer(verify_footer);
  verify_cmd->add_option("DIR", verify.dir, "Log directory")->required();
  auto* repair_flag = verify_cmd
                        ->add_flag("--repair", verify.repair,
                                   "Run the recovery and report what it did");
  verify_cmd
    ->add_flag("--force", verify.force,
               "With --repair: also delete orphan generations holding records "
               "the live generation lacks (counted as dropped)")
    ->needs(repair_flag);

  compact_args compact;
  uint64_t keep_last = 0;
  uint64_t max_bytes = 0;
  uint64_t max_age = 0;
  auto* compact_cmd = app.add_subcommand(
    "compact", "Drop the oldest records, keeping a suffix of the log");
  compact_cmd->footer(compact_footer);
  compact_cmd->add_option("DIR", compact.dir, "Log directory")->required();
  auto* retention = compact_cmd
                      ->add_option_group("retention",
                                         "Which records to keep (exactly one)");
  auto* keep_last_opt = retention
                          ->add_option("--keep-last", keep_last,
                                       "Keep the newest N records")
                          ->type_name("N")
                          ->check(whole_number());
  auto* max_bytes_opt = retention
                          ->add_option("--max-bytes", max_bytes,
                                       "Keep the longest suffix whose payloads "
                                       "total at most B bytes")
                          ->type_name("B")
                          ->check(whole_number());
  auto* max_age_opt = retention
                        ->add_option("--max-age", max_age,
                                     "Drop records older than SECONDS")
                        ->type_name("SECONDS")
                        ->check(whole_number());
  retention->require_option(1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app.exit(e); // --help
    std::string hint = "meshseg --help";
    for (const auto* sub : app.get_subcommands())
      hint = "meshseg " + sub->get_name() + " --help";
    std::cerr << "meshseg: " << e.what() << " (see " << hint << ")\n";
    return exit_error;
  }

  if (*append_cmd)
    return run_append(append, std::cout, std::cerr);
  if (*dump_cmd)
    return run_dump(dump, std::cout, std::cerr);
  if (*verify_cmd)
    return run_verify(verify, std::cout, std::cerr);
  if (keep_last_opt->count() > 0)
    compact.keep_last = keep_last;
  if (max_bytes_opt->count() > 0)
    compact.max_bytes = max_bytes;
  if (max_age_opt->count() > 0)
    compact.max_age_seconds = max_age;
  return run_compact(compact, std::cout, std::cerr);
}

} // namespace

int main(int argc, char** argv) {
  // Bad input is reported as an ordinary error by the commands; this only
  // turns an unexpected exception (out of memory) into one line and an exit
  // code instead of an abort.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "meshseg: internal error: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "meshseg: internal error\n";
  }
  return exit_error;
}
