#include "server/store_spool.h"

#include <sys/stat.h>

#include <iostream>
#include <utility>

namespace cpuledger::server {

Result<std::unique_ptr<StoreSpool>> StoreSpool::Open(const std::string& dir, uint64_t max_bytes,
                                                     std::function<void(const std::string&)> log) {
  Result<Spool> spool = Spool::Open(dir, kSpoolName, max_bytes);
  if (!spool.ok()) return spool.status();
  if (!log) log = [](const std::string& line) { std::cerr << "cpuledger serve: " << line << "\n"; };
  return std::unique_ptr<StoreSpool>(new StoreSpool(std::move(*spool), std::move(log)));
}

StoreSpool::StoreSpool(Spool spool, std::function<void(const std::string&)> log)
    : spool_(std::move(spool)),
      next_sequence_(spool_.max_own_sequence() + 1),
      log_(std::move(log)) {}

Status StoreSpool::Append(const record::Batch& batch) {
  std::string bytes;
  if (!batch.SerializeToString(&bytes)) return Internal("cannot serialize a batch to spool it");
  std::lock_guard lock(mu_);
  Status s = spool_.Append(next_sequence_, static_cast<uint64_t>(batch.records_size()),
                           batch.dropped_records(), bytes);
  if (s.ok()) ++next_sequence_;
  return s;
}

Result<std::vector<record::ArenaBatch>> StoreSpool::Peek(size_t max) {
  std::lock_guard lock(mu_);
  std::vector<record::ArenaBatch> out;
  while (out.size() < max && out.size() < spool_.size()) {
    const size_t i = out.size();
    Result<std::string> bytes = spool_.Read(i);
    if (!bytes.ok()) {
      if (!out.empty()) break;  // replay what was read; the next Peek() retries
      return bytes.status();
    }
    Result<record::ArenaBatch> batch =
        record::DecodeBatchOnArena(record::Encoding::kProtobuf, *bytes);
    std::string damage;
    if (!batch.ok()) {
      damage = batch.status().message();
    } else if (static_cast<uint64_t>(batch->batch->records_size()) != spool_.at(i).records) {
      damage = "it holds " + std::to_string(batch->batch->records_size()) +
               " records, its name says " + std::to_string(spool_.at(i).records);
    }
    if (damage.empty()) {
      out.push_back(std::move(*batch));
    } else if (i == 0) {
      DropDamagedFront(damage);
    } else {
      break;  // dropped when it is the front, after the ones before it are replayed
    }
  }
  return out;
}

void StoreSpool::DropDamagedFront(const std::string& why) {
  log_("dropping damaged spool entry " + spool_.front().path + " (" + why +
       "): it cannot be replayed");
  spool_.PopFront();
  ++dropped_damaged_;
}

void StoreSpool::Pop(size_t n) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < n && !spool_.empty(); ++i) spool_.PopFront();
}

bool StoreSpool::empty() const {
  std::lock_guard lock(mu_);
  return spool_.empty();
}

StoreSpoolStats StoreSpool::Stats() const {
  std::lock_guard lock(mu_);
  StoreSpoolStats s;
  s.batches = spool_.size();
  s.bytes = spool_.bytes();
  s.dropped_damaged = dropped_damaged_;
  struct stat st {};
  if (!spool_.empty() && ::stat(spool_.front().path.c_str(), &st) == 0)
    s.oldest_unix_us = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000 +
                       static_cast<int64_t>(st.st_mtim.tv_nsec) / 1000;
  return s;
}

}  // namespace cpuledger::server
