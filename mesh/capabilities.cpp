#include "mesh/capabilities.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

#include <sched.h>
#include <unistd.h>

#include "base/errc.hpp"

namespace mesh {

namespace {

bool allowed(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
         || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'
         || c == '/' || c == ':';
}

// Printable characters as themselves, anything else as its byte value, so
// an error line never carries control characters to a terminal.
std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f)
    return std::string{"'"} + c + "'";
  return "byte " + std::to_string(u);
}

// Empty when `text` is acceptable as a tag, label key or value; otherwise
// what is wrong with it.
std::string text_problem(std::string_view text) {
  if (text.empty())
    return "is empty";
  if (text.size() > max_capability_text)
    return "is longer than " + std::to_string(max_capability_text)
           + " characters";
  for (char c : text)
    if (!allowed(c))
      return "contains " + describe_char(c)
             + "; allowed are A-Z a-z 0-9 _ . - / :";
  return {};
}

// The text with control characters replaced, cut to a readable length.
std::string quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text.substr(0, 2 * max_capability_text)) {
    auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (text.size() > 2 * max_capability_text)
    out += "...";
  return out + "\"";
}

void sort_unique(std::vector<std::string>& xs) {
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
}

} // namespace

caf::error check_tag(std::string_view tag) {
  if (auto problem = text_problem(tag); !problem.empty())
    return make_error(errc::invalid_argument,
                      "tag " + quote(tag) + " " + problem);
  return {};
}

caf::expected<std::pair<std::string, std::string>>
parse_label(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos)
    return make_error(errc::invalid_argument,
                      "label " + quote(text) + " has no '=': expected K=V");
  auto key = text.substr(0, eq);
  auto value = text.substr(eq + 1);
  if (auto problem = text_problem(key); !problem.empty())
    return make_error(errc::invalid_argument,
                      "label " + quote(text) + ": key " + problem);
  if (auto problem = text_problem(value); !problem.empty())
    return make_error(errc::invalid_argument,
                      "label " + quote(text) + ": value " + problem);
  return std::make_pair(std::string{key}, std::string{value});
}

caf::expected<capabilities>
detect_capabilities(const std::vector<std::string>& tags,
                    const std::vector<std::string>& labels,
                    std::vector<std::string> kinds) {
  capabilities caps;
  for (const auto& tag : tags) {
    if (auto err = check_tag(tag))
      return err;
    caps.tags.push_back(tag);
  }
  sort_unique(caps.tags);
  for (const auto& text : labels) {
    auto kv = parse_label(text);
    if (!kv)
      return std::move(kv.error());
    if (!caps.labels.emplace(kv->first, kv->second).second)
      return make_error(errc::invalid_argument, "label key " + quote(kv->first)
                                                  + " is given more than once");
  }
  caps.cores = detect_cores();
  caps.memory_mb = detect_memory_mb();
  sort_unique(kinds);
  caps.kinds = std::move(kinds);
  return caps;
}

uint32_t detect_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    auto n = CPU_COUNT(&set);
    if (n > 0)
      return static_cast<uint32_t>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

uint64_t detect_memory_mb() {
  auto pages = sysconf(_SC_PHYS_PAGES);
  auto page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0)
    return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)
         / (1024 * 1024);
}

double saturation_of(double load1, uint32_t cores) {
  if (!(load1 > 0))
    return 0;
  auto s = load1 / static_cast<double>(std::max(1u, cores));
  return std::min(s, 1000.0);
}

double current_saturation(uint32_t cores) {
  double load[1] = {0};
  if (getloadavg(load, 1) != 1)
    return 0;
  return saturation_of(load[0], cores);
}

} // namespace mesh
