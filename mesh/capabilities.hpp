#pragma once

// A node's capability set (DESIGN.md section 3): the operator's tags and
// labels (`meshd --tag T --label K=V`), checked here so a typo stops meshd at
// start with one clear line, plus the cores and memory detected at start and
// the daemon kinds the node can spawn. Also the node's saturation, which
// every heartbeat reports.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "mesh/mesh_types.hpp"

namespace mesh {

/// Longest tag, label key or label value accepted.
constexpr size_t max_capability_text = 128;

/// invalid_argument unless `tag` is 1 to max_capability_text characters of
/// [A-Za-z0-9_.-/:]. The error names the tag and the first bad character.
caf::error check_tag(std::string_view tag);

/// Parses "K=V": K and V as check_tag demands; the first '=' splits them.
/// Errors (invalid_argument) name the text: no '=', empty key or value, a
/// character outside [A-Za-z0-9_.-/:].
caf::expected<std::pair<std::string, std::string>>
parse_label(std::string_view text);

/// The capabilities of this machine: the tags (sorted, duplicates dropped),
/// labels ("K=V" each; a key given twice is an error), the detected cores
/// and memory, and `kinds` sorted and unique.
caf::expected<capabilities>
detect_capabilities(const std::vector<std::string>& tags,
                    const std::vector<std::string>& labels,
                    std::vector<std::string> kinds);

/// CPUs this process may run on (sched_getaffinity, else
/// std::thread::hardware_concurrency), at least 1.
uint32_t detect_cores();

/// Physical memory in MiB (sysconf(_SC_PHYS_PAGES) * _SC_PAGE_SIZE), 0 when
/// the system does not say.
uint64_t detect_memory_mb();

/// `load1 / cores`, clamped to [0, 1000]; cores 0 counts as 1 and a
/// negative or NaN load as 0.
double saturation_of(double load1, uint32_t cores);

/// saturation_of the 1-minute load average (getloadavg, /proc/loadavg);
/// 0 when it cannot be read.
double current_saturation(uint32_t cores);

} // namespace mesh
