// Tests for src/profile/export.h: each format read back — collapsed lines
// split, speedscope JSON parsed, pprof bytes decoded with the generated
// message, and the pstats bytes loaded by Python's own marshal and pstats.
#include "profile/export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "profile/pprof.pb.h"
#include "trees.h"

namespace cpuledger::profile {
namespace {

using nlohmann::json;

// ExportTree() — every feature an export has to carry:
//   path                       calls  prim  self  total
//   view                           1     1    20    160
//   view.a                         2     2   100    105
//   view.a.len (builtin)           4     4     5      5
//   view.b                         1     1     0     35
//   view.b.helper                  1     1    30     35
//   view.b.helper.helper           1     0     5      5   (recursion)
CallTree ExportTree(const std::string& unit = "instructions") {
  CallTree tree(unit, "hardware", "exact");
  const FunctionId view = tree.Intern({"app.py", 10, "view"});
  const FunctionId a = tree.Intern({"app.py", 20, "a"});
  const FunctionId len = tree.Intern({"~", 0, "<built-in method builtins.len>"});
  const FunctionId b = tree.Intern({"lib.py", 5, "b"});
  const FunctionId helper = tree.Intern({"lib.py", 30, "helper"});
  const NodeId v = tree.Child(kRoot, view);
  tree.AddCall(v, 20, 160, true);
  const NodeId va = tree.Child(v, a);
  tree.AddCall(va, 60, 62, true);
  tree.AddCall(va, 40, 43, true);
  const NodeId val = tree.Child(va, len);
  for (int i = 0; i < 4; ++i) tree.AddCall(val, i == 0 ? 2 : 1, i == 0 ? 2 : 1, true);
  const NodeId vb = tree.Child(v, b);
  tree.AddCall(vb, 0, 35, true);
  const NodeId vbh = tree.Child(vb, helper);
  tree.AddCall(vbh, 30, 35, true);
  tree.AddCall(tree.Child(vbh, helper), 5, 5, false);
  return tree;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(ProfileExport, Collapsed) {
  const std::string text = ToCollapsed(ExportTree());
  EXPECT_EQ(Lines(text),
            (std::vector<std::string>{
                "view (app.py:10) 20",
                "view (app.py:10);a (app.py:20) 100",
                "view (app.py:10);a (app.py:20);<built-in method builtins.len> (~:0) 5",
                "view (app.py:10);b (lib.py:5);helper (lib.py:30) 30",
                "view (app.py:10);b (lib.py:5);helper (lib.py:30);helper (lib.py:30) 5",
            }));
  // Each line: frames, one space, the count (flamegraph.pl splits at the last space).
  uint64_t sum = 0;
  for (const std::string& line : Lines(text)) sum += std::stoull(line.substr(line.rfind(' ') + 1));
  EXPECT_EQ(sum, 160u);
}

TEST(ProfileExport, CollapsedEscapesSeparators) {
  CallTree tree("instructions", "hardware", "exact");
  testing::AddPath(tree, {"a;b"}, 1, 1);
  tree.AddCall(tree.Child(kRoot, tree.Intern({"x;y\nz.py", 1, "f\r"})), 2, 2, true);
  EXPECT_EQ(ToCollapsed(tree), "a_b (app.py:1) 1\nf_ (x_y_z.py:1) 2\n");
  EXPECT_EQ(ToCollapsed(CallTree("instructions", "hardware", "exact")), "");
}

TEST(ProfileExport, Speedscope) {
  const CallTree tree = ExportTree();
  const json file = json::parse(ToSpeedscope(tree, "/cart GET"));
  EXPECT_EQ(file.at("$schema"), "https://www.speedscope.app/file-format-schema.json");
  EXPECT_EQ(file.at("name"), "/cart GET");
  const json& frames = file.at("shared").at("frames");
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_EQ(frames[0], json({{"name", "view"}, {"file", "app.py"}, {"line", 10}}));
  EXPECT_EQ(frames[2], json({{"name", "<built-in method builtins.len>"}}));  // builtin: no source
  ASSERT_EQ(file.at("profiles").size(), 1u);
  const json& p = file.at("profiles")[0];
  EXPECT_EQ(p.at("type"), "sampled");
  EXPECT_EQ(p.at("name"), "/cart GET");
  EXPECT_EQ(p.at("unit"), "none");
  EXPECT_EQ(p.at("startValue"), 0);
  EXPECT_EQ(p.at("endValue"), 160);
  EXPECT_EQ(p.at("samples"), json::parse("[[0],[0,1],[0,1,2],[0,3,4],[0,3,4,4]]"));
  EXPECT_EQ(p.at("weights"), json::parse("[20,100,5,30,5]"));

  EXPECT_EQ(json::parse(ToSpeedscope(ExportTree("cpu_ns"), "x"))["profiles"][0]["unit"],
            "nanoseconds");
  EXPECT_EQ(json::parse(ToSpeedscope(ExportTree("tsc"), "x"))["profiles"][0]["unit"], "none");
}

TEST(ProfileExport, SpeedscopeDoesNotThrowOnBadUtf8) {
  CallTree tree("instructions", "hardware", "exact");
  testing::AddPath(tree, {"bad\xff"}, 1, 1);
  const json file = json::parse(ToSpeedscope(tree, "n\xfe"));
  EXPECT_EQ(file["shared"]["frames"][0]["name"], "bad\xEF\xBF\xBD");
}

TEST(ProfileExport, Pprof) {
  Result<std::string> bytes = ToPprof(ExportTree());
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  pprof::Profile p;
  ASSERT_TRUE(p.ParseFromString(*bytes));
  const auto str = [&](int64_t i) { return p.string_table(static_cast<int>(i)); };
  ASSERT_GT(p.string_table_size(), 0);
  EXPECT_EQ(p.string_table(0), "");
  ASSERT_EQ(p.sample_type_size(), 2);
  EXPECT_EQ(str(p.sample_type(0).type()), "calls");
  EXPECT_EQ(str(p.sample_type(0).unit()), "count");
  EXPECT_EQ(str(p.sample_type(1).type()), "instructions");
  EXPECT_EQ(str(p.sample_type(1).unit()), "count");
  EXPECT_EQ(str(p.period_type().type()), "instructions");
  EXPECT_EQ(p.period(), 1);
  EXPECT_EQ(str(p.default_sample_type()), "instructions");

  ASSERT_EQ(p.function_size(), 5);
  ASSERT_EQ(p.location_size(), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(p.function(i).id(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(p.location(i).id(), static_cast<uint64_t>(i + 1));
    ASSERT_EQ(p.location(i).line_size(), 1);
    EXPECT_EQ(p.location(i).line(0).function_id(), p.function(i).id());
  }
  EXPECT_EQ(str(p.function(4).name()), "helper");
  EXPECT_EQ(str(p.function(4).system_name()), "helper");
  EXPECT_EQ(str(p.function(4).filename()), "lib.py");
  EXPECT_EQ(p.function(4).start_line(), 30);
  EXPECT_EQ(p.location(4).line(0).line(), 30);
  EXPECT_EQ(str(p.function(2).filename()), "~");

  // Every path with calls (view.b has calls but no self cost), leaf first.
  ASSERT_EQ(p.sample_size(), 6);
  std::vector<std::vector<uint64_t>> stacks;
  std::vector<std::vector<int64_t>> values;
  for (const pprof::Sample& s : p.sample()) {
    stacks.emplace_back(s.location_id().begin(), s.location_id().end());
    values.emplace_back(s.value().begin(), s.value().end());
  }
  using Stacks = std::vector<std::vector<uint64_t>>;
  using Values = std::vector<std::vector<int64_t>>;
  EXPECT_EQ(stacks, (Stacks{{1}, {2, 1}, {3, 2, 1}, {4, 1}, {5, 4, 1}, {5, 5, 4, 1}}));
  EXPECT_EQ(values, (Values{{1, 20}, {2, 100}, {4, 5}, {1, 0}, {1, 30}, {1, 5}}));

  Result<std::string> ns = ToPprof(ExportTree("cpu_ns"));
  ASSERT_TRUE(ns.ok());
  ASSERT_TRUE(p.ParseFromString(*ns));
  EXPECT_EQ(str(p.sample_type(1).type()), "cpu_ns");
  EXPECT_EQ(str(p.sample_type(1).unit()), "nanoseconds");
}

// ---------------------------------------------------------------------------
// pstats: the bytes must be what Python's marshal and pstats accept.

TEST(ProfileExport, PstatsBytes) {
  CallTree tree("instructions", "hardware", "exact");
  testing::AddPath(tree, {"f"}, 3, 3);
  // {("app.py", 1, "f"): (1, 1, 3.0, 3.0, {})}, by hand from marshal.c.
  const std::string want = std::string("{") +  // dict
                           ")\x03" +           // key: small tuple of 3
                           "z\x06"
                           "app.py" +                             // short ASCII str
                           std::string("i\x01\x00\x00\x00", 5) +  // int 1
                           "z\x01"
                           "f" +                                  //
                           ")\x05" +                              // value: small tuple of 5
                           std::string("i\x01\x00\x00\x00", 5) +  // primitive calls
                           std::string("i\x01\x00\x00\x00", 5) +  // calls
                           std::string("g\x00\x00\x00\x00\x00\x00\x08\x40", 9) +  // 3.0
                           std::string("g\x00\x00\x00\x00\x00\x00\x08\x40", 9) +  // 3.0
                           "{0" +  // callers: empty dict
                           "0";    // end of the outer dict
  EXPECT_EQ(ToPstats(tree), want);
}

bool HavePython() { return std::system("python3 -c pass >/dev/null 2>&1") == 0; }

// LoadWithPython() — writes `bytes` to a file, loads it with marshal and
// pstats.Stats (and prints the report, which reads every field), and returns
// the stats as JSON: [[file, line, name, cc, nc, tt, ct, [[caller file,
// line, name, nc, cc, tt, ct], ...]], ...] sorted by key.
json LoadWithPython(const std::string& bytes) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("cpuledger_pstats_" + std::to_string(getpid()) + ".prof");
  {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }
  const std::string script =
      "import io, json, marshal, pstats, sys\n"
      "p = sys.argv[1]\n"
      "d = marshal.load(open(p, 'rb'))\n"
      "s = pstats.Stats(p, stream=io.StringIO())\n"
      "s.sort_stats('cumulative').print_stats()\n"
      "s.print_callers(); s.print_callees()\n"
      "assert s.stats == d\n"
      "out = []\n"
      "for k in sorted(d):\n"
      "    cc, nc, tt, ct, callers = d[k]\n"
      "    assert isinstance(tt, float) and isinstance(ct, float)\n"
      "    out.append([*k, cc, nc, tt, ct, [[*c, *v] for c, v in sorted(callers.items())]])\n"
      "print(json.dumps(out))\n";
  const std::filesystem::path script_path = path.string() + ".py";
  {
    std::ofstream out(script_path);
    out << script;
  }
  const std::string command = "python3 " + script_path.string() + " " + path.string();
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while (pipe && (n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = pipe ? pclose(pipe) : -1;
  std::filesystem::remove(path);
  std::filesystem::remove(script_path);
  EXPECT_EQ(status, 0) << "python3 could not load the pstats file:\n" << output;
  if (status != 0) return json();
  return json::parse(output);
}

TEST(ProfileExport, PstatsLoadsInPython) {
  if (!HavePython()) GTEST_SKIP() << "python3 is not on PATH";
  const json stats = LoadWithPython(ToPstats(ExportTree()));
  // cProfile's shapes: (cc, nc, tt, ct, callers) with callers (nc, cc, tt, ct).
  const json want = json::parse(R"([
    ["app.py", 10, "view", 1, 1, 20.0, 160.0, []],
    ["app.py", 20, "a", 2, 2, 100.0, 105.0, [["app.py", 10, "view", 2, 2, 100.0, 105.0]]],
    ["lib.py", 5, "b", 1, 1, 0.0, 35.0, [["app.py", 10, "view", 1, 1, 0.0, 35.0]]],
    ["lib.py", 30, "helper", 1, 2, 35.0, 35.0,
      [["lib.py", 5, "b", 1, 1, 30.0, 35.0], ["lib.py", 30, "helper", 1, 0, 5.0, 5.0]]],
    ["~", 0, "<built-in method builtins.len>", 4, 4, 5.0, 5.0,
      [["app.py", 20, "a", 4, 4, 5.0, 5.0]]]
  ])");
  EXPECT_EQ(stats, want) << stats.dump(1);
}

TEST(ProfileExport, PstatsUnitsAndBigNumbers) {
  if (!HavePython()) GTEST_SKIP() << "python3 is not on PATH";
  CallTree tree("cpu_ns", "thread_cputime", "exact");
  const NodeId v = tree.Child(kRoot, tree.Intern({"app.py", 70000, "vüe"}));
  tree.AddCall(v, 2'000'000'000, 3'500'000'000, true);  // 2 s and 3.5 s
  CallTree big("instructions", "hardware", "exact");
  const NodeId b = big.Child(kRoot, big.Intern({std::string(300, 'p'), 1, "big"}));
  for (int i = 0; i < 2; ++i) big.AddCall(b, 1, 1, true);
  ASSERT_TRUE(big.Merge(big).ok());  // calls 4
  record::Profile proto;
  big.ToProto(&proto);
  proto.mutable_nodes(1)->set_calls(UINT64_MAX);               // 'l' with 5 digits
  proto.mutable_nodes(1)->set_primitive_calls(5'000'000'000);  // just over 32 bits
  Result<CallTree> huge = CallTree::FromProto(proto);
  ASSERT_TRUE(huge.ok());

  EXPECT_EQ(LoadWithPython(ToPstats(tree)),
            json::parse(R"([["app.py", 70000, "vüe", 1, 1, 2.0, 3.5, []]])"));
  const json stats = LoadWithPython(ToPstats(*huge));
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0][0], std::string(300, 'p'));  // long ASCII: 'u', not 'z'
  EXPECT_EQ(stats[0][3].get<uint64_t>(), 5'000'000'000u);
  EXPECT_EQ(stats[0][4].get<uint64_t>(), UINT64_MAX);
}

TEST(ProfileExport, EmptyTree) {
  const CallTree tree("instructions", "hardware", "exact");
  EXPECT_EQ(ToCollapsed(tree), "");
  EXPECT_EQ(ToPstats(tree), "{0");
  const json file = json::parse(ToSpeedscope(tree, "empty"));
  EXPECT_EQ(file["profiles"][0]["endValue"], 0);
  EXPECT_TRUE(file["profiles"][0]["samples"].empty());
  Result<std::string> pb = ToPprof(tree);
  ASSERT_TRUE(pb.ok());
  pprof::Profile p;
  ASSERT_TRUE(p.ParseFromString(*pb));
  EXPECT_EQ(p.sample_size(), 0);
}

}  // namespace
}  // namespace cpuledger::profile
