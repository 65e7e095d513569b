// src/profile/export.cc — ToCollapsed and ToSpeedscope (text formats).
// ToPprof is in pprof.cc, ToPstats in pstats.cc.
#include "profile/export.h"

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "profile/walk.h"

namespace cpuledger::profile {
namespace {

// AppendFrameText() — `s` with the collapsed format's separators replaced.
void AppendFrameText(std::string_view s, std::string* out) {
  for (char c : s) out->push_back(c == ';' || c == '\n' || c == '\r' ? '_' : c);
}

void AppendFrame(const Function& f, std::string* out) {
  AppendFrameText(f.name, out);
  out->append(" (");
  AppendFrameText(f.file, out);
  out->push_back(':');
  out->append(std::to_string(f.line));
  out->push_back(')');
}

}  // namespace

std::string ToCollapsed(const CallTree& tree) {
  std::string out;
  std::string stack;                // the frames of the path being walked
  std::vector<size_t> stack_sizes;  // stack.size() before each frame
  internal::WalkDepthFirst(
      tree,
      [&](NodeId id) {
        const Node& n = tree.nodes()[id];
        stack_sizes.push_back(stack.size());
        if (!stack.empty()) stack.push_back(';');
        AppendFrame(tree.functions()[n.function], &stack);
        if (n.self_cost == 0) return;
        out += stack;
        out.push_back(' ');
        out += std::to_string(n.self_cost);
        out.push_back('\n');
      },
      [&](NodeId) {
        stack.resize(stack_sizes.back());
        stack_sizes.pop_back();
      });
  return out;
}

std::string ToSpeedscope(const CallTree& tree, std::string_view name) {
  using Json = nlohmann::ordered_json;
  Json frames = Json::array();
  for (const Function& f : tree.functions()) {
    Json frame = {{"name", f.name}};
    if (f.file != "~") {  // a builtin has no source to point at
      frame["file"] = f.file;
      if (f.line != 0) frame["line"] = f.line;
    }
    frames.push_back(std::move(frame));
  }
  Json samples = Json::array();
  Json weights = Json::array();
  uint64_t total = 0;
  std::vector<FunctionId> stack;
  internal::WalkDepthFirst(
      tree,
      [&](NodeId id) {
        const Node& n = tree.nodes()[id];
        stack.push_back(n.function);
        if (n.self_cost == 0) return;
        samples.push_back(stack);
        weights.push_back(n.self_cost);
        total += n.self_cost;
      },
      [&](NodeId) { stack.pop_back(); });
  Json profile = {{"type", "sampled"},
                  {"name", std::string(name)},
                  {"unit", tree.unit() == "cpu_ns" ? "nanoseconds" : "none"},
                  {"startValue", 0},
                  {"endValue", total},
                  {"samples", std::move(samples)},
                  {"weights", std::move(weights)}};
  Json file = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
               {"shared", {{"frames", std::move(frames)}}},
               {"profiles", Json::array({std::move(profile)})},
               {"name", std::string(name)},
               {"activeProfileIndex", 0},
               {"exporter", "cpuledger"}};
  // replace, not throw: an export has no error path for a bad byte in a name.
  return file.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace cpuledger::profile
