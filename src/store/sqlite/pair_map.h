// src/store/sqlite/pair_map.h — PairMap: (int64, int64) -> V in one flat
// array (open addressing, linear probing).
//
// The profile write path looks one up per profile node: ~3M lookups/s at
// 2,000 real-app profiles/s. A probe here is usually one cache line, where
// std::unordered_map chases a node per lookup and allocates one per insert.
//
//   PairMap<int64_t> ids;
//   auto [value, added] = ids.TryEmplace(parent, function);
//   if (added) *value = next_id++;
//
// REQUIRES: the first key is never INT64_MIN or INT64_MIN + 1 (the empty and
// erased markers); ids and unix times are not. Erase() leaves a tombstone,
// reclaimed when the table grows. Pointers returned are valid until the next
// TryEmplace(). Iteration order is unspecified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace cpuledger::store::sqlite {

template <typename V>
class PairMap {
 public:
  // PairMap::TryEmplace() — RETURNS: the value of (a, b), default-constructed
  // and `true` when it was not there. COST: amortised O(1), no allocation but growth.
  std::pair<V*, bool> TryEmplace(int64_t a, int64_t b) {
    if ((used_ + 1) * 4 > slots_.size() * 3) Grow();
    const size_t mask = slots_.size() - 1;
    size_t i = Hash(a, b) & mask;
    Slot* tomb = nullptr;
    for (;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.a == kEmpty) break;
      if (s.a == kErased) {
        if (tomb == nullptr) tomb = &s;
      } else if (s.a == a && s.b == b) {
        return {&s.value, false};
      }
    }
    Slot* slot = tomb != nullptr ? tomb : &slots_[i];
    if (tomb == nullptr) ++used_;
    *slot = Slot{a, b, V{}};
    ++size_;
    return {&slot->value, true};
  }

  // PairMap::Find() — RETURNS: the value of (a, b), or nullptr.
  const V* Find(int64_t a, int64_t b) const {
    if (slots_.empty()) return nullptr;
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(a, b) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.a == kEmpty) return nullptr;
      if (s.a == a && s.b == b) return &s.value;
    }
  }

  // PairMap::Erase() — removes (a, b) if there.
  void Erase(int64_t a, int64_t b) {
    if (slots_.empty()) return;
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(a, b) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.a == kEmpty) return;
      if (s.a == a && s.b == b) {
        s = Slot{kErased, 0, V{}};
        --size_;
        return;
      }
    }
  }

  void Clear() {
    slots_.clear();
    used_ = size_ = 0;
  }
  size_t size() const { return size_; }

  // PairMap::ForEach() — fn(a, b, const V&) for every entry.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const Slot& s : slots_)
      if (s.a != kEmpty && s.a != kErased) fn(s.a, s.b, s.value);
  }

 private:
  static constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kErased = kEmpty + 1;
  struct Slot {
    int64_t a = kEmpty, b = 0;
    V value{};
  };

  // Hash() — splitmix64's finalizer over both keys: ids are dense, so the
  // low bits must depend on every bit.
  static size_t Hash(int64_t a, int64_t b) {
    uint64_t h = static_cast<uint64_t>(a) * 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(b);
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 31;
    return static_cast<size_t>(h);
  }

  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    size_t n = 64;
    while (n * 3 < (size_ + 1) * 8) n *= 2;  // at most ~3/8 full after growing
    slots_.assign(n, Slot{});
    used_ = size_ = 0;
    for (Slot& s : old)
      if (s.a != kEmpty && s.a != kErased) *TryEmplace(s.a, s.b).first = std::move(s.value);
  }

  std::vector<Slot> slots_;  // size a power of two (or empty)
  size_t used_ = 0;          // live entries and tombstones
  size_t size_ = 0;          // live entries
};

}  // namespace cpuledger::store::sqlite
