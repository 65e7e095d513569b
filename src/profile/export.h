// src/profile/export.h — a CallTree in the formats other tools read.
//
//   std::string folded = ToCollapsed(tree);        // flamegraph.pl, inferno
//   std::string json = ToSpeedscope(tree, "/cart"); // speedscope.app
//   Result<std::string> pb = ToPprof(tree);         // go tool pprof
//   std::string stats = ToPstats(tree);             // python: pstats.Stats(path)
//
// Frames are named from Function: "name (file:line)" in collapsed stacks,
// name/file/line fields elsewhere. Every export is deterministic: one tree
// always gives the same bytes. None of them throws.
// COST: O(nodes x depth) time for the stack-per-path formats (collapsed,
// speedscope, pprof), O(nodes) for pstats; the output is built in memory.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "profile/call_tree.h"

namespace cpuledger::profile {

// ToCollapsed() — flamegraph.pl's collapsed ("folded") stacks: one line per
// path with self cost > 0, in node order: frames "name (file:line)",
// outermost first, joined by ';', then a space and the self cost.
// NOTE: ';', '\n' and '\r' inside a name or file would break the format, so
// they are written as '_'.
std::string ToCollapsed(const CallTree& tree);

// ToSpeedscope() — speedscope's JSON file format
// (https://www.speedscope.app/file-format-schema.json): shared.frames has one
// frame per function (index = FunctionId; builtins, file "~", carry no file
// or line), and one "sampled" profile named `name` whose samples are the
// paths with self cost > 0 (frame indices, outermost first) weighted by their
// self cost; startValue 0, endValue the total weight. unit: "nanoseconds"
// for cpu_ns, else "none" (speedscope has no instructions unit).
// NOTE: strings that are not UTF-8 are written with U+FFFD in their place.
std::string ToSpeedscope(const CallTree& tree, std::string_view name);

// ToPprof() — pprof's profile.proto, serialized and NOT gzipped (pprof reads
// both). One Location and one Function per function (ids FunctionId + 1;
// Line.line is the function's first line, as the tree has no call-site
// lines); one Sample per path with calls or self cost, leaf first, values
// [calls, self cost] under sample_type [{"calls", "count"}, {unit,
// "nanoseconds" for cpu_ns else "count"}]; period_type is the cost type,
// period 1, and the cost is the default sample type. Values above INT64_MAX
// are written as INT64_MAX. RETURNS: Internal if serialization fails (over
// 2 GiB).
Result<std::string> ToPprof(const CallTree& tree);

// ToPstats() — the bytes of a file that Python's pstats.Stats(path) loads:
// marshal data (format version 4, no references) of the dict cProfile's
// snapshot_stats() builds,
//   {(file, line, name): (primitive_calls, calls, tt, ct,
//                         {caller (file, line, name): (calls, primitive_calls, tt, ct)})}
// from TotalsByFunction() and, for callers, every parent -> child node pair
// summed per (caller function, callee function), ct counted once per
// outermost activation of the pair (as _lsprof.c's sub-entries do).
// NOTE: tt and ct are floats. For cpu_ns they are seconds (ns / 1e9); for
// instructions, cycles and tsc they are the raw counts, which pstats labels
// "seconds" — cProfile's own convention for a custom timer. The callers
// tuple is (calls, primitive_calls, ...), the reverse of the outer tuple's
// order, as cProfile writes it. Functions of the root's children have no
// callers. Builtins keep file "~" and line 0, as cProfile names them.
std::string ToPstats(const CallTree& tree);

}  // namespace cpuledger::profile
