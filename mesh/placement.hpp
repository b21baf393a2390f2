#pragma once

// Placement (DESIGN.md section 3): which nodes get the daemons of one
// `meshctl deploy KIND --count N [--require R]... [--on NODE]`.
//
// A node is a candidate for a kind when it is up (not suspect, not down),
// not drained, offers the kind (capabilities::kinds) and satisfies every
// requirement (the operator's --require and the kind's own requirements()):
// a hard veto, no partial credit. Among candidates the daemons are spread
// one at a time, each to the node with the best score:
//   1. the fewest daemons per core, counting the node's reported daemons
//      (node_load::daemons) plus those this call has already put there;
//   2. then the lowest saturation (node_load::saturation);
//   3. then the lowest node id (bytewise), so that the same inputs always
//      give the same plan.
// So 100 daemons over 3 equal idle nodes land 34/33/33, a node with twice
// the cores takes about twice the daemons, and a busy node gets fewer.
//
// Pure: no CAF actors, no clocks; the caller passes the member table.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "identity/fwd.hpp"
#include "mesh/mesh_types.hpp"

namespace mesh {

struct capability_filter;

/// Parses one `--require` argument:
///   tag=T            the node has tag T
///   label:K=V        the node's label K equals V
///   min_cores=N      the node has at least N cores
///   min_memory_mb=M  the node has at least M MB of memory
/// Errors: invalid_argument naming the text and what is wrong with it.
caf::expected<requirement> parse_requirement(std::string_view text);

/// The `--require` form of `r`; parse_requirement(to_string(r)) == r.
std::string to_string(const requirement& r);

/// Empty when `caps` satisfies `r`, else why not, for an operator:
/// "lacks tag ssd", "label zone is us, not eu", "lacks label zone",
/// "has 2 cores, needs 4", "has 1024 MB of memory, needs 2048".
std::string check(const requirement& r, const capabilities& caps);

/// A kind's own filter (daemon::requirements()) as requirements, in a fixed
/// order: tags, labels (by key), min_cores, min_memory_mb. Zero minimums
/// are left out: every node satisfies them.
std::vector<requirement> requirements_of(const capability_filter& f);

/// The most daemons one place() call spreads. Placing is O(count * nodes);
/// a larger count is a typo, not a deployment.
constexpr uint32_t max_placement_count = 1'000'000;

/// How many vetoed nodes a no_target_available error names before
/// "and N more".
constexpr size_t max_veto_reasons = 5;

/// Why `m` cannot run `kind` under `filter`: empty when it can, else every
/// reason, joined with ", " (e.g. "down", "drained, lacks tag ssd").
std::string veto_reason(const std::string& kind,
                        const std::vector<requirement>& filter,
                        const member_info& m);

/// Spreads `count` daemons of `kind` over `members` (the member table;
/// duplicate ids count once, the first wins). `filter` holds every
/// requirement (--require plus the kind's requirements_of). With `on_node`,
/// only that node is considered, still under the veto.
///
/// Returns (node, daemons to place there) for every node that gets at
/// least one, sorted by node id; the counts sum to `count`.
/// Errors:
///   invalid_argument     count is 0 or above max_placement_count;
///   no_target_available  no member passes the veto (or `on_node` is
///                        vetoed or not a member): the message names the
///                        kind and each vetoed node with its reason, the
///                        first max_veto_reasons of them, then "and N more".
caf::expected<std::vector<std::pair<entity_id, uint32_t>>>
place(const std::string& kind, uint32_t count,
      const std::vector<requirement>& filter,
      const std::vector<member_info>& members,
      const std::optional<entity_id>& on_node = std::nullopt);

} // namespace mesh
