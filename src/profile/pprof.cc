// src/profile/pprof.cc — ToPprof: a CallTree as pprof's profile.proto.
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <vector>

#include "profile/export.h"
#include "profile/pprof.pb.h"
#include "profile/walk.h"

namespace cpuledger::profile {
namespace {

// StringTable — pprof's interned strings; index 0 is "" by the format's rule.
class StringTable {
 public:
  explicit StringTable(pprof::Profile* p) : p_(p) { Index(""); }
  int64_t Index(const std::string& s) {
    const auto [it, added] = index_.emplace(s, static_cast<int64_t>(index_.size()));
    if (added) p_->add_string_table(s);
    return it->second;
  }

 private:
  pprof::Profile* p_;
  std::unordered_map<std::string, int64_t> index_;
};

int64_t Clamp(uint64_t v) {
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(v > kMax ? kMax : v);
}

}  // namespace

Result<std::string> ToPprof(const CallTree& tree) {
  pprof::Profile p;
  StringTable strings(&p);
  const std::string cost_unit = tree.unit() == "cpu_ns" ? "nanoseconds" : "count";

  pprof::ValueType* calls = p.add_sample_type();
  calls->set_type(strings.Index("calls"));
  calls->set_unit(strings.Index("count"));
  pprof::ValueType* cost = p.add_sample_type();
  cost->set_type(strings.Index(tree.unit()));
  cost->set_unit(strings.Index(cost_unit));
  *p.mutable_period_type() = *cost;
  p.set_period(1);
  p.set_default_sample_type(cost->type());

  // One function and one location per FunctionId; ids are 1-based (0 means
  // "none" in pprof).
  for (size_t f = 0; f < tree.functions().size(); ++f) {
    const Function& fn = tree.functions()[f];
    const uint64_t id = f + 1;
    pprof::Function* pf = p.add_function();
    pf->set_id(id);
    pf->set_name(strings.Index(fn.name));
    pf->set_system_name(pf->name());
    pf->set_filename(strings.Index(fn.file));
    pf->set_start_line(fn.line);
    pprof::Location* loc = p.add_location();
    loc->set_id(id);
    pprof::Line* line = loc->add_line();
    line->set_function_id(id);
    line->set_line(fn.line);
  }

  std::vector<uint64_t> stack;  // location ids, outermost first
  internal::WalkDepthFirst(
      tree,
      [&](NodeId id) {
        const Node& n = tree.nodes()[id];
        stack.push_back(uint64_t{n.function} + 1);
        if (n.calls == 0 && n.self_cost == 0) return;
        pprof::Sample* s = p.add_sample();
        s->mutable_location_id()->Reserve(static_cast<int>(stack.size()));
        for (auto it = stack.rbegin(); it != stack.rend(); ++it) s->add_location_id(*it);
        s->add_value(Clamp(n.calls));
        s->add_value(Clamp(n.self_cost));
      },
      [&](NodeId) { stack.pop_back(); });

  std::string out;
  if (!p.SerializeToString(&out)) return Internal("pprof profile does not serialize (over 2 GiB?)");
  return out;
}

}  // namespace cpuledger::profile
