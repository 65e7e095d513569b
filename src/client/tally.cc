#include "client/tally.h"

#include "record/codec.h"

namespace cpuledger::client {
namespace {

// IsValidUtf8() — well-formed UTF-8 (no overlong forms, no surrogates, at
// most U+10FFFF): what the server's dimension check accepts.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Storable() — a name the server accepts as an endpoint of a tally.
bool Storable(std::string_view endpoint) {
  return !endpoint.empty() && endpoint.size() <= record::kMaxDimensionBytes &&
         IsValidUtf8(endpoint);
}

}  // namespace

int64_t MinuteOf(int64_t unix_ms) {
  constexpr int64_t kMinuteMs = 60'000;
  int64_t minute = unix_ms / kMinuteMs;
  if (unix_ms % kMinuteMs < 0) --minute;  // floor, not truncation
  return minute * 60;
}

MinuteTally::MinuteTally(int64_t minute_unix) : minute_unix_(minute_unix), users_(kHllPrecision) {}

void MinuteTally::Count(const std::string& endpoint, std::string_view user, bool sampled) {
  auto it = counts_.find(endpoint);
  if (it == counts_.end()) {
    // First time this minute: only now is the name checked and a key allocated.
    if (counts_.size() < kMaxEndpoints && Storable(endpoint)) {
      it = counts_.emplace(endpoint, Counts{}).first;
    } else {
      it = counts_.find(std::string(kOtherEndpoint));
      if (it == counts_.end()) it = counts_.emplace(kOtherEndpoint, Counts{}).first;
    }
  }
  it->second.requests++;
  if (sampled) it->second.sampled++;
  requests_++;
  if (!user.empty()) {
    users_.Add(user);
    has_users_ = true;
  }
}

record::WorkerTally MinuteTally::ToProto(const TallyIdentity& identity) const {
  record::WorkerTally out;
  out.set_minute_unix(minute_unix_);
  out.set_service(identity.service);
  out.set_host(identity.host);
  out.set_cluster(identity.cluster);
  out.set_region(identity.region);
  out.set_commit(identity.commit);
  out.set_sender(identity.sender);
  out.mutable_endpoints()->Reserve(static_cast<int>(counts_.size()));
  for (const auto& [name, counts] : counts_) {
    record::EndpointCount* e = out.add_endpoints();
    e->set_endpoint(name);
    e->set_requests(counts.requests);
    e->set_sampled(counts.sampled);
  }
  if (has_users_) {
    out.set_active_users_hll(users_.registers());
    out.set_hll_precision(static_cast<uint32_t>(users_.precision()));
  }
  return out;
}

}  // namespace cpuledger::client
