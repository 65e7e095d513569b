// tests/cpp/server/store_spool_test.cc — the server's spool on a real
// directory: order across senders and restarts, torn and damaged entries,
// the byte cap, one server per directory.
#include "server/store_spool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/spool.h"
#include "record/codec.h"
#include "server/config.h"
#include "temp_dir.h"

namespace cpuledger::server {
namespace {

namespace fs = std::filesystem;

// MakeBatch() — `records` records from `sender`, sequence `seq`, decoded as the server does.
record::Batch MakeBatch(const std::string& sender, uint64_t seq, int records) {
  std::string ndjson = "{\"type\":\"batch\",\"sender\":\"" + sender +
                       "\",\"sequence\":" + std::to_string(seq) + "}\n";
  for (int i = 0; i < records; ++i)
    ndjson +=
        "{\"service\":\"shop\",\"endpoint\":\"/a/\",\"method\":\"GET\",\"status\":200,"
        "\"host\":\"h1\",\"start_time_unix_us\":" +
        std::to_string(1'700'000'000'000'000 + i) +
        ",\"wall_us\":100,\"cpu_ns\":1000,\"counter_source\":\"task_clock\","
        "\"sample_rate\":1.0}\n";
  Result<record::Batch> b = record::DecodeBatch(record::Encoding::kNdjson, ndjson);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? std::move(*b) : record::Batch{};
}

// Ids() — (sender, sequence) of each peeked batch, in order.
std::vector<std::string> Ids(const std::vector<record::ArenaBatch>& batches) {
  std::vector<std::string> out;
  for (const record::ArenaBatch& b : batches)
    out.push_back(b.batch->sender() + "/" + std::to_string(b.batch->sequence()));
  return out;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

class StoreSpoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<StoreSpool> Open(uint64_t max_bytes = 1 << 20) {
    Result<std::unique_ptr<StoreSpool>> s = StoreSpool::Open(
        dir_.path(), max_bytes, [this](const std::string& l) { log_.push_back(l); });
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string EntryDir() const { return dir_.File(StoreSpool::kSpoolName); }

  test_support::TempDir dir_;
  std::vector<std::string> log_;
};

TEST_F(StoreSpoolTest, KeepsArrivalOrderAcrossSendersAndRestarts) {
  {
    std::unique_ptr<StoreSpool> spool = Open();
    ASSERT_TRUE(spool->Append(MakeBatch("b", 9, 2)).ok());
    ASSERT_TRUE(spool->Append(MakeBatch("a", 1, 3)).ok());
    ASSERT_TRUE(spool->Append(MakeBatch("b", 10, 1)).ok());
    EXPECT_EQ(spool->Stats().batches, 3u);
    EXPECT_GT(spool->Stats().oldest_unix_us, 0);
  }
  {
    std::unique_ptr<StoreSpool> spool = Open();  // a restart
    Result<std::vector<record::ArenaBatch>> peeked = spool->Peek(2);
    ASSERT_TRUE(peeked.ok());
    EXPECT_EQ(Ids(*peeked), (std::vector<std::string>{"b/9", "a/1"}));
    EXPECT_EQ((*peeked)[1].batch->records_size(), 3);
    spool->Pop(2);
    ASSERT_TRUE(spool->Append(MakeBatch("a", 2, 1)).ok());  // numbered after what it found
  }
  std::unique_ptr<StoreSpool> spool = Open();
  Result<std::vector<record::ArenaBatch>> rest = spool->Peek(10);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(Ids(*rest), (std::vector<std::string>{"b/10", "a/2"}));
  spool->Pop(2);
  EXPECT_TRUE(spool->empty());
  EXPECT_EQ(spool->Stats().bytes, 0u);
  EXPECT_EQ(spool->Stats().oldest_unix_us, 0);
  EXPECT_TRUE(log_.empty());
}

TEST_F(StoreSpoolTest, ATornWriteIsNeverListed) {
  {
    std::unique_ptr<StoreSpool> spool = Open();
    ASSERT_TRUE(spool->Append(MakeBatch("a", 1, 1)).ok());
  }
  // A crash mid-Append leaves the temp file only (never renamed: never acknowledged).
  const std::string torn = EntryDir() + "/." + SpoolFileName(2, 5, 0) + ".tmp";
  WriteFile(torn, MakeBatch("a", 2, 5).SerializeAsString().substr(0, 20));
  std::unique_ptr<StoreSpool> spool = Open();
  EXPECT_FALSE(fs::exists(torn));
  Result<std::vector<record::ArenaBatch>> peeked = spool->Peek(10);
  ASSERT_TRUE(peeked.ok());
  EXPECT_EQ(Ids(*peeked), (std::vector<std::string>{"a/1"}));
}

TEST_F(StoreSpoolTest, DamagedEntriesAreDroppedWithALogLineWhenTheyReachTheFront) {
  {
    std::unique_ptr<StoreSpool> spool = Open();
    ASSERT_TRUE(spool->Append(MakeBatch("a", 1, 1)).ok());
  }
  const std::string whole = MakeBatch("a", 2, 4).SerializeAsString();
  // Cut at a record boundary: it parses, but holds fewer records than its name says.
  const std::string cut = MakeBatch("a", 2, 3).SerializeAsString();
  WriteFile(EntryDir() + "/" + SpoolFileName(2, 4, 0), cut);
  WriteFile(EntryDir() + "/" + SpoolFileName(3, 4, 0), whole.substr(0, whole.size() - 7));
  WriteFile(EntryDir() + "/" + SpoolFileName(4, 4, 0), whole);
  std::unique_ptr<StoreSpool> spool = Open();
  Result<std::vector<record::ArenaBatch>> first = spool->Peek(10);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Ids(*first), (std::vector<std::string>{"a/1"}));  // stops before the damage
  spool->Pop(1);
  Result<std::vector<record::ArenaBatch>> next = spool->Peek(10);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(Ids(*next), (std::vector<std::string>{"a/2"}));  // the whole copy, seq 4
  EXPECT_EQ((*next)[0].batch->records_size(), 4);
  EXPECT_EQ(spool->Stats().dropped_damaged, 2u);
  ASSERT_EQ(log_.size(), 2u);
  EXPECT_NE(log_[0].find("holds 3 records, its name says 4"), std::string::npos) << log_[0];
  EXPECT_NE(log_[1].find("dropping damaged spool entry"), std::string::npos) << log_[1];
}

TEST_F(StoreSpoolTest, TheCapRefusesAndWritesNothing) {
  const std::string one = MakeBatch("a", 1, 1).SerializeAsString();
  std::unique_ptr<StoreSpool> spool = Open(one.size() + 1);
  ASSERT_TRUE(spool->Append(MakeBatch("a", 1, 1)).ok());
  Status full = spool->Append(MakeBatch("a", 2, 1));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(spool->Stats().batches, 1u);
  EXPECT_EQ(spool->Stats().bytes, one.size());
}

TEST_F(StoreSpoolTest, OneServerPerDirectory) {
  std::unique_ptr<StoreSpool> spool = Open();
  Result<std::unique_ptr<StoreSpool>> second = StoreSpool::Open(dir_.path(), 1 << 20, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

// The spool's config keys (config.h), beside the spool they set up.
TEST_F(StoreSpoolTest, ConfigKeysAreReadAndChecked) {
  auto load = [&](const std::string& text, ServerConfig& c) {
    WriteFile(dir_.File("c.toml"), text);
    return LoadServerConfigFile(dir_.File("c.toml"), c);
  };
  ServerConfig c;
  EXPECT_FALSE(c.spool.has_value());  // unset: on for ClickHouse only (server.cc)
  ASSERT_TRUE(load("spool = false\nspool_dir = \"/srv/spool\"\nspool_max_bytes = 4096\n"
                   "spool_slow_after = \"250ms\"\n",
                   c)
                  .ok());
  EXPECT_EQ(c.spool, std::optional<bool>(false));
  EXPECT_EQ(c.spool_dir, "/srv/spool");
  EXPECT_EQ(c.spool_max_bytes, 4096u);
  EXPECT_EQ(c.spool_slow_after_us, 250'000);
  for (const char* bad : {"spool = \"yes\"\n", "spool_max_bytes = 0\n", "spool_dir = \"\"\n",
                          "spool_slow_after = \"soon\"\n", "spool_slow_after = \"0s\"\n"}) {
    ServerConfig before = c;
    Status s = load(bad, c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(c.spool_max_bytes, before.spool_max_bytes) << bad;
  }
}

}  // namespace
}  // namespace cpuledger::server
