// src/profile/pstats.cc — ToPstats: a CallTree as the marshal data that
// Python's pstats.Stats loads (what cProfile's dump_stats writes).
//
// The marshal format (CPython Python/marshal.c), the subset written here:
// every object is a type byte and a body; integers are little-endian.
//   '{' key value key value ... '0'    dict, ended by the NULL type
//   ')' n:u8 items...                  small tuple (version 4), n < 256
//   '(' n:i32 items...                 tuple
//   'i' v:i32                          int that fits 32 bits
//   'l' n:i32 digits:u16[n]            other ints: base 2**15, least
//                                      significant digit first, top digit != 0
//   'g' v:f64                          float, IEEE binary64
//   'z' n:u8 bytes                     str, ASCII, n < 256
//   'u' n:i32 bytes                    str, UTF-8
// No references (FLAG_REF): every object is written in full, which loads the
// same, just a little larger.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "profile/export.h"
#include "profile/walk.h"

namespace cpuledger::profile {
namespace {

class MarshalWriter {
 public:
  explicit MarshalWriter(std::string* out) : out_(out) {}

  void DictBegin() { Byte('{'); }
  void DictEnd() { Byte('0'); }
  void TupleBegin(size_t n) {
    if (n < 256) {
      Byte(')');
      Byte(static_cast<uint8_t>(n));
    } else {
      Byte('(');
      U32(static_cast<uint32_t>(n));
    }
  }
  void Int(uint64_t v) {
    if (v <= INT32_MAX) {
      Byte('i');
      U32(static_cast<uint32_t>(v));
      return;
    }
    std::vector<uint16_t> digits;
    for (; v != 0; v >>= 15) digits.push_back(static_cast<uint16_t>(v & 0x7fff));
    Byte('l');
    U32(static_cast<uint32_t>(digits.size()));  // positive: the sign of the number
    for (uint16_t d : digits) U16(d);
  }
  void Float(double d) {
    Byte('g');
    const auto bits = std::bit_cast<uint64_t>(d);
    for (int i = 0; i < 8; ++i) Byte(static_cast<uint8_t>(bits >> (8 * i)));
  }
  void Str(std::string_view s) {
    bool ascii = s.size() < 256;
    for (size_t i = 0; ascii && i < s.size(); ++i) ascii = static_cast<unsigned char>(s[i]) < 0x80;
    if (ascii) {
      Byte('z');
      Byte(static_cast<uint8_t>(s.size()));
    } else {
      Byte('u');
      U32(static_cast<uint32_t>(s.size()));
    }
    out_->append(s);
  }
  // FunctionKey() — pstats' (file, line, name).
  void FunctionKey(const Function& f) {
    TupleBegin(3);
    Str(f.file);
    Int(f.line);
    Str(f.name);
  }

 private:
  void Byte(uint8_t b) { out_->push_back(static_cast<char>(b)); }
  void U16(uint16_t v) {
    Byte(static_cast<uint8_t>(v));
    Byte(static_cast<uint8_t>(v >> 8));
  }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) Byte(static_cast<uint8_t>(v >> (8 * i)));
  }

  std::string* out_;
};

// PairStats — one (caller, callee) function pair, as _lsprof.c's sub-entry.
struct PairStats {
  FunctionId caller = 0, callee = 0;
  uint64_t calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
  uint32_t on_stack = 0;  // activations of the pair being walked
};

// CallerPairs() — every parent -> child function pair of the tree, sorted by
// (callee, caller).
std::vector<PairStats> CallerPairs(const CallTree& tree) {
  std::unordered_map<uint64_t, PairStats> pairs;
  const auto key = [](FunctionId caller, FunctionId callee) {
    return static_cast<uint64_t>(caller) << 32 | callee;
  };
  const std::vector<Node>& nodes = tree.nodes();
  internal::WalkDepthFirst(
      tree,
      [&](NodeId id) {
        const Node& n = nodes[id];
        if (n.parent == kRoot) return;
        const FunctionId caller = nodes[n.parent].function;
        PairStats& s = pairs[key(caller, n.function)];
        s.caller = caller;
        s.callee = n.function;
        s.calls += n.calls;
        s.primitive_calls += n.primitive_calls;
        s.self_cost += n.self_cost;
        if (s.on_stack++ == 0) s.total_cost += n.total_cost;  // recursion counted once
      },
      [&](NodeId id) {
        const Node& n = nodes[id];
        if (n.parent != kRoot) --pairs[key(nodes[n.parent].function, n.function)].on_stack;
      });
  std::vector<PairStats> out;
  out.reserve(pairs.size());
  for (const auto& [k, s] : pairs) out.push_back(s);
  std::sort(out.begin(), out.end(), [](const PairStats& a, const PairStats& b) {
    return a.callee != b.callee ? a.callee < b.callee : a.caller < b.caller;
  });
  return out;
}

}  // namespace

std::string ToPstats(const CallTree& tree) {
  // cProfile's convention: a custom timer's units are reported as "seconds".
  const double scale = tree.unit() == "cpu_ns" ? 1e-9 : 1.0;
  const auto seconds = [scale](uint64_t v) { return static_cast<double>(v) * scale; };
  const std::vector<PairStats> pairs = CallerPairs(tree);

  std::string out;
  MarshalWriter w(&out);
  w.DictBegin();
  size_t p = 0;
  for (const FunctionTotals& t : TotalsByFunction(tree)) {
    w.FunctionKey(tree.functions()[t.function]);
    w.TupleBegin(5);
    w.Int(t.primitive_calls);
    w.Int(t.calls);
    w.Float(seconds(t.self_cost));
    w.Float(seconds(t.total_cost));
    w.DictBegin();  // callers
    while (p < pairs.size() && pairs[p].callee < t.function) ++p;
    for (; p < pairs.size() && pairs[p].callee == t.function; ++p) {
      const PairStats& s = pairs[p];
      w.FunctionKey(tree.functions()[s.caller]);
      w.TupleBegin(4);  // cProfile's order here: calls first
      w.Int(s.calls);
      w.Int(s.primitive_calls);
      w.Float(seconds(s.self_cost));
      w.Float(seconds(s.total_cost));
    }
    w.DictEnd();
  }
  w.DictEnd();
  return out;
}

}  // namespace cpuledger::profile
