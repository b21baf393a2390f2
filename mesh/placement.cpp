#include "mesh/placement.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "actors/daemon.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

namespace {

caf::error bad(std::string_view text, const std::string& why) {
  return make_error(errc::invalid_argument,
                    "bad requirement '" + std::string{text} + "': " + why);
}

constexpr const char* forms = "expected tag=T, label:K=V, min_cores=N or "
                              "min_memory_mb=M";

/// Parses a whole decimal number no larger than `max`.
std::optional<uint64_t> parse_number(std::string_view s, uint64_t max) {
  if (s.empty())
    return std::nullopt;
  uint64_t x = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (ec != std::errc{} || end != s.data() + s.size() || x > max)
    return std::nullopt;
  return x;
}

/// What placement knows about one candidate while spreading.
struct slot {
  entity_id id;
  uint64_t cores;
  uint64_t daemons;
  double saturation;
  uint32_t placed = 0;
};

/// True when `a` is the better place for the next daemon.
bool better(const slot& a, const slot& b) {
  // daemons/cores compared exactly by cross-multiplying: a node with 8
  // cores and 3 daemons against one with 3 cores and 1 daemon must not
  // depend on rounding. 128 bits: both factors may exceed 32 bits.
  using wide = unsigned __int128;
  auto lhs = wide{a.daemons} * b.cores;
  auto rhs = wide{b.daemons} * a.cores;
  if (lhs != rhs)
    return lhs < rhs;
  if (a.saturation != b.saturation)
    return a.saturation < b.saturation;
  return a.id < b.id;
}

double clamp_saturation(double s) {
  // A node reporting NaN or garbage is treated as the busiest possible,
  // not as idle.
  if (!(s >= 0))
    return s < 0 ? 0 : 1000;
  return std::min(s, 1000.0);
}

std::string describe_filter(const std::vector<requirement>& filter) {
  if (filter.empty())
    return "";
  std::string out = " (filter:";
  for (size_t i = 0; i < filter.size(); ++i)
    out += (i == 0 ? " " : ", ") + to_string(filter[i]);
  return out + ")";
}

} // namespace

caf::expected<requirement> parse_requirement(std::string_view text) {
  if (text.empty())
    return bad(text, std::string{"empty; "} + forms);
  requirement r;
  constexpr std::string_view label_prefix = "label:";
  if (text.substr(0, label_prefix.size()) == label_prefix) {
    auto rest = text.substr(label_prefix.size());
    auto eq = rest.find('=');
    if (eq == std::string_view::npos)
      return bad(text, "a label requirement is label:K=V");
    if (eq == 0)
      return bad(text, "the label key is empty");
    if (eq + 1 == rest.size())
      return bad(text, "the label value is empty");
    r.what = requirement::type::label;
    r.key = std::string{rest.substr(0, eq)};
    r.value = std::string{rest.substr(eq + 1)};
    return r;
  }
  auto eq = text.find('=');
  if (eq == std::string_view::npos)
    return bad(text, std::string{"no '='; "} + forms);
  auto key = text.substr(0, eq);
  auto value = text.substr(eq + 1);
  if (key == "tag") {
    if (value.empty())
      return bad(text, "the tag is empty");
    r.what = requirement::type::tag;
    r.key = std::string{value};
    return r;
  }
  if (key == "min_cores" || key == "min_memory_mb") {
    bool cores = key == "min_cores";
    auto max = cores ? uint64_t{std::numeric_limits<uint32_t>::max()}
                     : std::numeric_limits<uint64_t>::max();
    auto n = parse_number(value, max);
    if (!n)
      return bad(text, "'" + std::string{value}
                         + "' is not a whole number from 0 to "
                         + std::to_string(max));
    r.what = cores ? requirement::type::min_cores
                   : requirement::type::min_memory_mb;
    r.number = *n;
    return r;
  }
  return bad(text, "unknown requirement '" + std::string{key} + "'; " + forms);
}

std::string to_string(const requirement& r) {
  switch (r.what) {
    case requirement::type::tag: return "tag=" + r.key;
    case requirement::type::label: return "label:" + r.key + "=" + r.value;
    case requirement::type::min_cores:
      return "min_cores=" + std::to_string(r.number);
    case requirement::type::min_memory_mb:
      return "min_memory_mb=" + std::to_string(r.number);
  }
  return "unknown requirement";
}

std::string check(const requirement& r, const capabilities& caps) {
  switch (r.what) {
    case requirement::type::tag:
      if (std::find(caps.tags.begin(), caps.tags.end(), r.key)
          == caps.tags.end())
        return "lacks tag " + r.key;
      return {};
    case requirement::type::label: {
      auto it = caps.labels.find(r.key);
      if (it == caps.labels.end())
        return "lacks label " + r.key;
      if (it->second != r.value)
        return "label " + r.key + " is " + it->second + ", not " + r.value;
      return {};
    }
    case requirement::type::min_cores:
      if (caps.cores < r.number)
        return "has " + std::to_string(caps.cores) + " cores, needs "
               + std::to_string(r.number);
      return {};
    case requirement::type::min_memory_mb:
      if (caps.memory_mb < r.number)
        return "has " + std::to_string(caps.memory_mb) + " MB of memory, needs "
               + std::to_string(r.number);
      return {};
  }
  return "unknown requirement type";
}

std::vector<requirement> requirements_of(const capability_filter& f) {
  std::vector<requirement> out;
  auto tags = f.require_tags;
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  for (auto& t : tags) {
    requirement r;
    r.what = requirement::type::tag;
    r.key = t;
    out.push_back(std::move(r));
  }
  for (auto& [k, v] : f.labels) {
    requirement r;
    r.what = requirement::type::label;
    r.key = k;
    r.value = v;
    out.push_back(std::move(r));
  }
  if (f.min_cores > 0) {
    requirement r;
    r.what = requirement::type::min_cores;
    r.number = f.min_cores;
    out.push_back(std::move(r));
  }
  if (f.min_memory_mb > 0) {
    requirement r;
    r.what = requirement::type::min_memory_mb;
    r.number = f.min_memory_mb;
    out.push_back(std::move(r));
  }
  return out;
}

std::string veto_reason(const std::string& kind,
                        const std::vector<requirement>& filter,
                        const member_info& m) {
  std::vector<std::string> why;
  if (m.state != node_state::up)
    why.emplace_back(to_string(m.state));
  if (m.node.drained)
    why.emplace_back("drained");
  auto& kinds = m.node.caps.kinds;
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    why.push_back("lacks kind " + kind);
  for (auto& r : filter)
    if (auto reason = check(r, m.node.caps); !reason.empty())
      why.push_back(std::move(reason));
  std::string out;
  for (auto& w : why)
    out += (out.empty() ? "" : ", ") + w;
  return out;
}

caf::expected<std::vector<std::pair<entity_id, uint32_t>>>
place(const std::string& kind, uint32_t count,
      const std::vector<requirement>& filter,
      const std::vector<member_info>& members,
      const std::optional<entity_id>& on_node) {
  if (count == 0 || count > max_placement_count)
    return make_error(errc::invalid_argument,
                      "cannot place " + std::to_string(count) + " daemons of "
                        + kind + ": the count must be 1 to "
                        + std::to_string(max_placement_count));
  std::vector<const member_info*> considered;
  for (auto& m : members) {
    if (on_node && m.node.id != *on_node)
      continue;
    auto dup = std::find_if(considered.begin(), considered.end(),
                            [&m](const member_info* c) {
                              return c->node.id == m.node.id;
                            });
    if (dup == considered.end())
      considered.push_back(&m);
  }
  if (on_node && considered.empty())
    return make_error(errc::no_target_available,
                      "cannot place kind " + kind + " on node "
                        + to_hex(*on_node) + ": not a member of the mesh");
  std::vector<slot> slots;
  std::vector<std::string> vetoes;
  for (auto* m : considered) {
    auto why = veto_reason(kind, filter, *m);
    if (why.empty())
      slots.push_back(
        slot{m->node.id, std::max<uint64_t>(m->node.caps.cores, 1),
             m->node.load.daemons, clamp_saturation(m->node.load.saturation)});
    else
      vetoes.push_back("node " + to_hex(m->node.id) + ": " + why);
  }
  if (slots.empty()) {
    if (on_node)
      return make_error(errc::no_target_available, "cannot place kind " + kind
                                                     + describe_filter(filter)
                                                     + " on " + vetoes.front());
    std::string msg = "no node can run kind " + kind + describe_filter(filter);
    if (vetoes.empty())
      return make_error(errc::no_target_available,
                        msg + ": the mesh has no members");
    for (size_t i = 0; i < vetoes.size() && i < max_veto_reasons; ++i)
      msg += (i == 0 ? ": " : "; ") + vetoes[i];
    if (vetoes.size() > max_veto_reasons)
      msg += "; and " + std::to_string(vetoes.size() - max_veto_reasons)
             + " more";
    return make_error(errc::no_target_available, std::move(msg));
  }
  for (uint32_t i = 0; i < count; ++i) {
    auto best = std::min_element(slots.begin(), slots.end(),
                                 [](const slot& a, const slot& b) {
                                   return better(a, b);
                                 });
    ++best->daemons;
    ++best->placed;
  }
  std::sort(slots.begin(), slots.end(), [](const slot& a, const slot& b) {
    return a.id < b.id;
  });
  std::vector<std::pair<entity_id, uint32_t>> plan;
  for (auto& s : slots)
    if (s.placed > 0)
      plan.emplace_back(s.id, s.placed);
  return plan;
}

} // namespace mesh
