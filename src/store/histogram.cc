#include "store/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace cpuledger::store {
namespace {

constexpr int kNumBuckets = LogHistogram::kMaxIndex + 1;
constexpr int kCellBits = 8;  // cells per octave: 256, each narrower than a bucket

// Tables — bound[i] = 1.02^i, the upper edge of bucket i; cell[e * 256 + m]
// = the bucket of the lowest value whose top bits are (e, m) (e = position of
// the highest set bit, m = the next 8 bits). A cell spans a ratio of at most
// 257/256 < 1.02, so a value is in bucket cell[...] or the next one.
struct Tables {
  double bound[kNumBuckets];
  uint16_t cell[64 << kCellBits];
};

const Tables& GetTables() {
  static const Tables* tables = [] {
    auto* t = new Tables;
    for (int i = 0; i < kNumBuckets; ++i) t->bound[i] = std::pow(LogHistogram::kGamma, i);
    for (int e = 0; e < 64; ++e) {
      for (int m = 0; m < (1 << kCellBits); ++m) {
        const double low = std::ldexp((1 << kCellBits) + m, e - kCellBits);
        const int b =
            static_cast<int>(std::lower_bound(t->bound, t->bound + kNumBuckets, low) - t->bound);
        t->cell[(e << kCellBits) + m] = static_cast<uint16_t>(std::min(b, kNumBuckets - 1));
      }
    }
    return t;
  }();
  return *tables;
}

}  // namespace

int LogHistogram::BucketOf(uint64_t value) {
  if (value == 0) return -1;
  const Tables& t = GetTables();
  const int e = 63 - __builtin_clzll(value);
  const uint64_t m = e >= kCellBits ? (value >> (e - kCellBits)) : (value << (kCellBits - e));
  const int b = t.cell[(e << kCellBits) + static_cast<int>(m & ((1 << kCellBits) - 1))];
  return static_cast<double>(value) > t.bound[b] && b < kMaxIndex ? b + 1 : b;
}

double LogHistogram::ValueOf(int bucket) {
  if (bucket < 0) return 0;
  return 2.0 * GetTables().bound[std::min(bucket, kMaxIndex)] / (kGamma + 1.0);
}

LogHistogram::~LogHistogram() {
  if (on_heap()) delete[] data_;
}

LogHistogram::LogHistogram(const LogHistogram& other)
    : count_(other.count_), zero_(other.zero_), lo_(other.lo_), size_(other.size_) {
  if (size_ > kInline) {
    cap_ = size_;
    data_ = new uint64_t[cap_];
  }
  std::memcpy(data_, other.data_, size_ * sizeof(uint64_t));
}

void LogHistogram::StealFrom(LogHistogram& other) noexcept {
  count_ = other.count_;
  zero_ = other.zero_;
  lo_ = other.lo_;
  size_ = other.size_;
  if (other.on_heap()) {
    data_ = std::exchange(other.data_, other.inline_);
    cap_ = std::exchange(other.cap_, kInline);
  } else {
    data_ = inline_;
    cap_ = kInline;
    std::memcpy(inline_, other.inline_, sizeof inline_);
  }
  other.count_ = other.zero_ = 0;
  other.size_ = 0;
}

LogHistogram::LogHistogram(LogHistogram&& other) noexcept { StealFrom(other); }

LogHistogram& LogHistogram::operator=(const LogHistogram& other) {
  if (this != &other) {
    LogHistogram copy(other);
    *this = std::move(copy);
  }
  return *this;
}

LogHistogram& LogHistogram::operator=(LogHistogram&& other) noexcept {
  if (this == &other) return *this;
  if (on_heap()) delete[] data_;
  StealFrom(other);
  return *this;
}

uint64_t LogHistogram::at(int index) const {
  const int k = index - lo_;
  return k >= 0 && k < static_cast<int>(size_) ? data_[k] : 0;
}

void LogHistogram::Cover(int lo, int hi) {
  if (size_ == 0) {
    lo_ = lo;
    const uint32_t n = static_cast<uint32_t>(hi - lo + 1);
    if (n > cap_) {
      if (on_heap()) delete[] data_;
      cap_ = std::max(n, 2 * cap_);
      data_ = new uint64_t[cap_];
    }
    std::fill(data_, data_ + n, 0);
    size_ = n;
    return;
  }
  const int new_lo = std::min(lo, lo_);
  const int new_hi = std::max(hi, lo_ + static_cast<int>(size_) - 1);
  const uint32_t n = static_cast<uint32_t>(new_hi - new_lo + 1);
  const uint32_t shift = static_cast<uint32_t>(lo_ - new_lo);
  if (n > cap_) {
    // Grow with slack (the window usually keeps widening a little).
    const uint32_t cap = std::min<uint32_t>(std::max(n + n / 2, 2 * cap_), kNumBuckets);
    auto* data = new uint64_t[cap];
    std::fill(data, data + n, 0);
    std::memcpy(data + shift, data_, size_ * sizeof(uint64_t));
    if (on_heap()) delete[] data_;
    data_ = data;
    cap_ = cap;
  } else {
    if (shift > 0) std::memmove(data_ + shift, data_, size_ * sizeof(uint64_t));
    std::fill(data_, data_ + shift, 0);
    std::fill(data_ + shift + size_, data_ + n, 0);
  }
  lo_ = new_lo;
  size_ = n;
}

void LogHistogram::Add(uint64_t value, uint64_t count) {
  if (count == 0) return;
  count_ += count;
  const int b = BucketOf(value);
  if (b < 0) {
    zero_ += count;
    return;
  }
  if (size_ == 0 || b < lo_ || b >= lo_ + static_cast<int>(size_)) Cover(b, b);
  data_[b - lo_] += count;
}

void LogHistogram::Merge(const LogHistogram& other) {
  count_ += other.count_;
  zero_ += other.zero_;
  if (other.size_ == 0) return;
  Cover(other.lo_, other.lo_ + static_cast<int>(other.size_) - 1);
  uint64_t* dst = data_ + (other.lo_ - lo_);
  for (uint32_t i = 0; i < other.size_; ++i) dst[i] += other.data_[i];
}

Status LogHistogram::MergeEncoded(std::string_view blob) {
  if (blob.empty()) return OkStatus();
  // Parse first, so that a malformed blob merges nothing and the window grows
  // once: buckets ascend, so the first and last entries give the range.
  struct Entry {
    int32_t index;
    uint64_t count;
  };
  Entry entries[kNumBuckets];  // 36 KiB of stack; only what the blob holds is touched
  size_t n = 0;
  const char* p = blob.data();
  const char* end = p + blob.size();
  uint64_t zero = 0;
  if (!ReadVarint(&p, end, &zero)) return InvalidArgument("histogram blob: truncated");
  uint64_t total = zero;
  int64_t index = -1;
  while (p < end) {
    uint64_t delta = 0, count = 0;
    if (!ReadVarint(&p, end, &delta) || !ReadVarint(&p, end, &count))
      return InvalidArgument("histogram blob: truncated");
    if (delta == 0 || count == 0) return InvalidArgument("histogram blob: bad bucket");
    if (delta > static_cast<uint64_t>(kMaxIndex - index))
      return InvalidArgument("histogram blob: bucket out of range");
    index += static_cast<int64_t>(delta);
    if (count > std::numeric_limits<uint64_t>::max() - total)
      return InvalidArgument("histogram blob: count overflow");
    total += count;
    entries[n++] = {static_cast<int32_t>(index), count};
  }
  count_ += total;
  zero_ += zero;
  if (n == 0) return OkStatus();
  Cover(entries[0].index, entries[n - 1].index);
  for (size_t i = 0; i < n; ++i) data_[entries[i].index - lo_] += entries[i].count;
  return OkStatus();
}

Result<LogHistogram> LogHistogram::Decode(std::string_view blob) {
  LogHistogram h;
  Status s = h.MergeEncoded(blob);
  if (!s.ok()) return s;
  return h;
}

void LogHistogram::AppendEncoded(std::string* out) const {
  if (count_ == 0) return;
  AppendVarint(out, zero_);
  int prev = -1;
  for (uint32_t k = 0; k < size_; ++k) {
    if (data_[k] == 0) continue;
    const int i = lo_ + static_cast<int>(k);
    AppendVarint(out, static_cast<uint64_t>(i - prev));
    AppendVarint(out, data_[k]);
    prev = i;
  }
}

std::string LogHistogram::Encode() const {
  std::string out;
  AppendEncoded(&out);
  return out;
}

double LogHistogram::Quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the ceil(q * n)-th smallest value, at least the first.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank <= zero_) return 0;
  uint64_t seen = zero_;
  for (uint32_t k = 0; k < size_; ++k) {
    seen += data_[k];
    if (seen >= rank) return ValueOf(lo_ + static_cast<int>(k));
  }
  return ValueOf(lo_ + static_cast<int>(size_) - 1);  // unreachable: counts sum to count_
}

bool LogHistogram::operator==(const LogHistogram& other) const {
  if (count_ != other.count_ || zero_ != other.zero_) return false;
  // Windows may differ in their empty margins; compare bucket by bucket.
  const int lo = std::min(lo_, other.lo_);
  const int hi = std::max(lo_ + static_cast<int>(size_), other.lo_ + static_cast<int>(other.size_));
  for (int i = lo; i < hi; ++i)
    if (at(i) != other.at(i)) return false;
  return true;
}

}  // namespace cpuledger::store
