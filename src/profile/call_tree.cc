// src/profile/call_tree.cc — CallTree: interning, the child lookup the hooks
// call on every call, merge, the proto form, and per-function totals.
#include "profile/call_tree.h"

#include <utility>

#include "profile/walk.h"
#include "record/codec.h"

namespace cpuledger::profile {
namespace {

// AppendKey() — "file\0line\0name": the NULs keep ("a", 1, "b") and
// ("a\0" ...) apart; a file name cannot hold a NUL anyway.
void AppendKey(const Function& f, std::string* key) {
  key->append(f.file);
  key->push_back('\0');
  key->append(std::to_string(f.line));
  key->push_back('\0');
  key->append(f.name);
}

}  // namespace

CallTree::CallTree(std::string unit, std::string source, std::string mode)
    : unit_(std::move(unit)), source_(std::move(source)), mode_(std::move(mode)) {
  nodes_.emplace_back();  // the root
  links_.emplace_back();
}

FunctionId CallTree::Intern(const Function& f) {
  key_scratch_.clear();
  AppendKey(f, &key_scratch_);
  const auto it = function_index_.find(key_scratch_);
  if (it != function_index_.end()) return it->second;
  const auto id = static_cast<FunctionId>(functions_.size());
  functions_.push_back(f);
  function_index_.emplace(key_scratch_, id);
  return id;
}

NodeId CallTree::Child(NodeId parent, FunctionId function) {
  Links& links = links_[parent];
  if (links.children <= kLinearChildren) {
    for (NodeId c = links.first_child; c != kNoNode; c = links_[c].next_sibling)
      if (links_[c].function == function) return c;
  } else {
    const auto it = child_index_.find(ChildKey(parent, function));
    if (it != child_index_.end()) return it->second;
  }
  const auto id = static_cast<NodeId>(nodes_.size());
  Node node;
  node.function = function;
  node.parent = parent;
  nodes_.push_back(node);
  Links added;
  added.next_sibling = links_[parent].first_child;
  added.function = function;
  links_.push_back(added);  // may move links_: `links` is stale from here
  Links& p = links_[parent];
  p.first_child = id;
  ++p.children;
  if (p.children == kLinearChildren + 1) {
    // Crossing over to the map: index every child, not just the new one.
    for (NodeId c = id; c != kNoNode; c = links_[c].next_sibling)
      child_index_.emplace(ChildKey(parent, nodes_[c].function), c);
  } else if (p.children > kLinearChildren + 1) {
    child_index_.emplace(ChildKey(parent, function), id);
  }
  return id;
}

void CallTree::AddCall(NodeId node, uint64_t self_cost, uint64_t total_cost, bool primitive) {
  Node& n = nodes_[node];
  ++n.calls;
  n.primitive_calls += primitive ? 1 : 0;
  n.self_cost += self_cost;
  n.total_cost += total_cost;
}

Status CallTree::Merge(const CallTree& other) {
  if (other.unit_ != unit_)
    return InvalidArgument("cannot merge a profile in '" + other.unit_ + "' into one in '" + unit_ +
                           "'");
  if (&other == this) {  // the walk below adds to the nodes it reads
    const CallTree copy = other;
    return Merge(copy);
  }
  std::vector<FunctionId> function_map(other.functions_.size());
  for (size_t f = 0; f < other.functions_.size(); ++f)
    function_map[f] = Intern(other.functions_[f]);
  // Parents come before children, so one forward pass maps every node.
  std::vector<NodeId> node_map(other.nodes_.size());
  node_map[kRoot] = kRoot;
  for (size_t i = 0; i < other.nodes_.size(); ++i) {
    const Node& from = other.nodes_[i];
    if (i != kRoot) node_map[i] = Child(node_map[from.parent], function_map[from.function]);
    Node& to = nodes_[node_map[i]];
    to.calls += from.calls;
    to.primitive_calls += from.primitive_calls;
    to.self_cost += from.self_cost;
    to.total_cost += from.total_cost;
  }
  requests_ += other.requests_;
  builtins_folded_ = builtins_folded_ || other.builtins_folded_;
  return OkStatus();
}

std::vector<FunctionId> CallTree::Path(NodeId node) const {
  std::vector<FunctionId> path;
  for (NodeId n = node; n != kRoot; n = nodes_[n].parent) path.push_back(nodes_[n].function);
  return {path.rbegin(), path.rend()};
}

uint64_t CallTree::TotalCost() const {
  uint64_t total = 0;
  for (NodeId c = links_[kRoot].first_child; c != kNoNode; c = links_[c].next_sibling)
    total += nodes_[c].total_cost;
  return total;
}

void CallTree::ToProto(record::Profile* out) const {
  out->Clear();
  out->set_unit(unit_);
  out->set_source(source_);
  out->set_mode(mode_);
  out->mutable_functions()->Reserve(static_cast<int>(functions_.size()));
  for (const Function& f : functions_) {
    record::ProfileFunction* pf = out->add_functions();
    pf->set_file(f.file);
    pf->set_line(f.line);
    pf->set_name(f.name);
  }
  out->mutable_nodes()->Reserve(static_cast<int>(nodes_.size()));
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    record::ProfileNode* pn = out->add_nodes();
    if (i != kRoot) {  // the root's parent and function are 0 by rule
      pn->set_parent(n.parent);
      pn->set_function(n.function);
    }
    pn->set_calls(n.calls);
    pn->set_primitive_calls(n.primitive_calls);
    pn->set_self_cost(n.self_cost);
    pn->set_total_cost(n.total_cost);
  }
  out->set_builtins_folded(builtins_folded_);
  out->set_overhead_per_event(overhead_per_event_);
  out->set_requests(requests_);
}

Result<CallTree> CallTree::FromProto(const record::Profile& in) {
  Status valid = record::ValidateProfile(in);
  if (!valid.ok()) return valid;
  CallTree tree(in.unit(), in.source(), in.mode());
  tree.requests_ = in.requests() == 0 ? 1 : in.requests();
  tree.builtins_folded_ = in.builtins_folded();
  tree.overhead_per_event_ = in.overhead_per_event();
  std::vector<FunctionId> function_map(static_cast<size_t>(in.functions_size()));
  for (int f = 0; f < in.functions_size(); ++f) {
    const record::ProfileFunction& pf = in.functions(f);
    function_map[static_cast<size_t>(f)] = tree.Intern({pf.file(), pf.line(), pf.name()});
  }
  // Validation guarantees parent < index, so every parent is mapped before
  // its children. Going through Child() merges duplicate sibling paths.
  std::vector<NodeId> node_map(static_cast<size_t>(in.nodes_size()));
  for (int i = 0; i < in.nodes_size(); ++i) {
    const record::ProfileNode& pn = in.nodes(i);
    const NodeId to =
        i == 0 ? kRoot : tree.Child(node_map[pn.parent()], function_map[pn.function()]);
    node_map[static_cast<size_t>(i)] = to;
    Node& n = tree.nodes_[to];
    n.calls += pn.calls();
    n.primitive_calls += pn.primitive_calls();
    n.self_cost += pn.self_cost();
    n.total_cost += pn.total_cost();
  }
  return tree;
}

std::vector<FunctionTotals> TotalsByFunction(const CallTree& tree) {
  const std::vector<Node>& nodes = tree.nodes();
  std::vector<FunctionTotals> by_function(tree.functions().size());
  std::vector<uint32_t> on_stack(tree.functions().size(), 0);  // activations being walked
  std::vector<bool> seen(tree.functions().size(), false);
  internal::WalkDepthFirst(
      tree,
      [&](NodeId id) {
        const Node& n = nodes[id];
        FunctionTotals& t = by_function[n.function];
        t.calls += n.calls;
        t.primitive_calls += n.primitive_calls;
        t.self_cost += n.self_cost;
        // An inner activation's total is already inside the outer one's.
        if (on_stack[n.function]++ == 0) t.total_cost += n.total_cost;
        seen[n.function] = true;
      },
      [&](NodeId id) { --on_stack[nodes[id].function]; });
  std::vector<FunctionTotals> out;
  for (size_t f = 0; f < by_function.size(); ++f) {
    if (!seen[f]) continue;
    by_function[f].function = static_cast<FunctionId>(f);
    out.push_back(by_function[f]);
  }
  return out;
}

}  // namespace cpuledger::profile
