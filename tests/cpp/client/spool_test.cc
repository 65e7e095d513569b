// Tests for src/base/spool.h: naming, atomic files, locks, adoption, bounds.
#include "base/spool.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "client_test_util.h"

namespace cpuledger::client {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(ClientSpool, FileNamesSortLikeSequencesAndParseBack) {
  EXPECT_EQ(SpoolFileName(7, 1000, 3), "00000000000000000007-1000-3.batch");
  EXPECT_LT(SpoolFileName(9, 1, 0), SpoolFileName(10, 1, 0));
  EXPECT_LT(SpoolFileName(99, 5, 5), SpoolFileName(1'700'000'000'000'000, 1, 0));
  std::optional<SpoolEntry> e = ParseSpoolFileName(SpoolFileName(UINT64_MAX, 12, 34));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->sequence, UINT64_MAX);
  EXPECT_EQ(e->records, 12u);
  EXPECT_EQ(e->dropped, 34u);
  EXPECT_FALSE(ParseSpoolFileName(".lock"));
  EXPECT_FALSE(ParseSpoolFileName(".00000000000000000007-1-0.batch.tmp"));
  EXPECT_FALSE(ParseSpoolFileName("7-1-0.batch"));
  EXPECT_FALSE(ParseSpoolFileName("00000000000000000007-1.batch"));
  EXPECT_FALSE(ParseSpoolFileName("00000000000000000007-x-0.batch"));
}

TEST(ClientSpool, AppendsReadsAndPopsInOrder) {
  TempDir dir;
  Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
  ASSERT_TRUE(spool.ok()) << spool.status().ToString();
  EXPECT_TRUE(spool->empty());
  ASSERT_TRUE(spool->Append(1, 10, 0, "first").ok());
  ASSERT_TRUE(spool->Append(2, 20, 5, "second!").ok());
  EXPECT_EQ(spool->size(), 2u);
  EXPECT_EQ(spool->bytes(), 12u);
  EXPECT_EQ(Names(dir.path() + "/me"),
            (std::vector<std::string>{".lock", SpoolFileName(1, 10, 0), SpoolFileName(2, 20, 5)}));
  EXPECT_EQ(spool->front().sequence, 1u);
  EXPECT_EQ(*spool->ReadFront(), "first");
  spool->PopFront();
  EXPECT_EQ(spool->front().records, 20u);
  EXPECT_EQ(spool->front().dropped, 5u);
  EXPECT_EQ(*spool->ReadFront(), "second!");
  spool->PopFront();
  EXPECT_TRUE(spool->empty());
  EXPECT_EQ(spool->bytes(), 0u);
  EXPECT_EQ(Names(dir.path() + "/me"), (std::vector<std::string>{".lock"}));
}

TEST(ClientSpool, RefusesWhatDoesNotFit) {
  TempDir dir;
  Result<Spool> spool = Spool::Open(dir.path(), "me", 10);
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE(spool->Append(1, 1, 0, "123456").ok());
  Status s = spool->Append(2, 1, 0, "12345");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(spool->size(), 1u);
  EXPECT_TRUE(spool->Append(3, 1, 0, "1234").ok());  // exactly full
  EXPECT_EQ(spool->bytes(), 10u);
}

TEST(ClientSpool, LockKeepsASecondOwnerOut) {
  TempDir dir;
  Result<Spool> first = Spool::Open(dir.path(), "me", 1 << 20);
  ASSERT_TRUE(first.ok());
  Result<Spool> second = Spool::Open(dir.path(), "me", 1 << 20);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

TEST(ClientSpool, ReopenContinuesAfterTheHighestSequenceAndCleansTempFiles) {
  TempDir dir;
  {
    Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
    ASSERT_TRUE(spool.ok());
    ASSERT_TRUE(spool->Append(41, 1, 0, "a").ok());
    ASSERT_TRUE(spool->Append(42, 1, 0, "b").ok());
  }  // files left: the directory stays
  // A crash mid-write leaves a temp file; it is never taken for a batch.
  WriteFile(dir.path() + "/me/." + SpoolFileName(43, 1, 0) + ".tmp", "half");
  Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(spool->max_own_sequence(), 42u);
  EXPECT_EQ(spool->size(), 2u);
  EXPECT_EQ(spool->front().sequence, 41u);
  EXPECT_EQ(Names(dir.path() + "/me"),
            (std::vector<std::string>{".lock", SpoolFileName(41, 1, 0), SpoolFileName(42, 1, 0)}));
}

TEST(ClientSpool, EmptyOwnDirectoryIsRemovedOnClose) {
  TempDir dir;
  {
    Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
    ASSERT_TRUE(spool.ok());
    EXPECT_TRUE(fs::exists(dir.path() + "/me/.lock"));
  }
  EXPECT_FALSE(fs::exists(dir.path() + "/me"));
}

TEST(ClientSpool, AdoptsDeadSendersButNotLiveOnes) {
  TempDir dir;
  // A live sender: holds its lock.
  Result<Spool> live = Spool::Open(dir.path(), "live", 1 << 20);
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live->Append(1, 1, 0, "live-1").ok());
  // A dead sender: files, and a lock file nobody holds.
  fs::create_directories(dir.path() + "/dead");
  WriteFile(dir.path() + "/dead/.lock", "");
  WriteFile(dir.path() + "/dead/" + SpoolFileName(5, 2, 0), "dead-5");
  WriteFile(dir.path() + "/dead/" + SpoolFileName(6, 3, 1), "dead-6");
  WriteFile(dir.path() + "/dead/stranger.txt", "not a batch");
  // A crashed sender that never wrote anything: removed on sight.
  fs::create_directories(dir.path() + "/empty");

  Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(spool->adopted(), 1u);
  EXPECT_FALSE(fs::exists(dir.path() + "/empty"));
  ASSERT_EQ(spool->size(), 2u);
  EXPECT_EQ(spool->bytes(), 12u);
  EXPECT_EQ(spool->max_own_sequence(), 0u);  // others' sequences are theirs
  EXPECT_EQ(*spool->ReadFront(), "dead-5");
  spool->PopFront();
  EXPECT_EQ(*spool->ReadFront(), "dead-6");
  EXPECT_EQ(spool->front().records, 3u);
  // The last file of an adopted directory takes the directory with it (the
  // stranger file keeps it, so check the batch files are gone instead).
  fs::remove(dir.path() + "/dead/stranger.txt");
  spool->PopFront();
  EXPECT_TRUE(spool->empty());
  EXPECT_FALSE(fs::exists(dir.path() + "/dead"));
  // The live sender's files were left alone.
  EXPECT_EQ(live->size(), 1u);
  EXPECT_TRUE(fs::exists(live->front().path));
}

TEST(ClientSpool, ReleasedLockMakesTheDirectoryAdoptable) {
  TempDir dir;
  {
    Result<Spool> gone = Spool::Open(dir.path(), "gone", 1 << 20);
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE(gone->Append(3, 1, 0, "left").ok());
  }
  Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(spool->adopted(), 1u);
  ASSERT_EQ(spool->size(), 1u);
  EXPECT_EQ(*spool->ReadFront(), "left");
  // Adopted files go before the own ones.
  ASSERT_TRUE(spool->Append(1, 1, 0, "mine").ok());
  EXPECT_EQ(*spool->ReadFront(), "left");
}

// Senders starting together (gunicorn's workers) each get their spool: a
// directory being claimed is never taken for a dead sender's by a sibling.
// Made and then locked in place, a sibling could lock (and remove) it in
// between, and that Open() failed as "in use by a live process".
TEST(ClientSpool, SendersOpeningTogetherEachGetTheirOwn) {
  TempDir dir;
  constexpr int kSenders = 4, kOpens = 400;
  std::vector<pid_t> children;
  for (int c = 0; c < kSenders; ++c) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int failed = 0;
      for (int i = 0; i < kOpens; ++i)
        failed +=
            !Spool::Open(dir.path(), "s" + std::to_string(c) + "-" + std::to_string(i), 1 << 20)
                 .ok();
      ::_exit(failed == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (const pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a sender's Open() failed";
  }
  EXPECT_TRUE(Names(dir.path()).empty());  // each empty directory went with its spool
}

// A process that died between making its claim directory and renaming it
// into place left ".id.claim" behind: an Open() beside it removes it once
// it is a minute old and unlocked, and leaves a younger one (its owner may
// be about to lock it) and a locked one alone.
TEST(ClientSpool, RemovesClaimDirectoriesLeftByADeadProcess) {
  TempDir dir;
  const std::string dead = dir.path() + "/.dead.claim", young = dir.path() + "/.young.claim",
                    held = dir.path() + "/.held.claim";
  for (const std::string& d : {dead, young, held}) fs::create_directories(d);
  Result<UniqueFd> holder = LockFile(held + "/.lock");
  ASSERT_TRUE(holder.ok());
  const auto two_minutes_ago = fs::file_time_type::clock::now() - std::chrono::minutes(2);
  fs::last_write_time(dead, two_minutes_ago);
  fs::last_write_time(held, two_minutes_ago);

  Result<Spool> spool = Spool::Open(dir.path(), "me", 1 << 20);
  ASSERT_TRUE(spool.ok());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(young));
  EXPECT_TRUE(fs::exists(held));
  EXPECT_EQ(spool->adopted(), 0u);
}

TEST(ClientSpool, RejectsSenderIdsThatAreNotPlainNames) {
  TempDir dir;
  EXPECT_EQ(Spool::Open(dir.path(), "../x", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Spool::Open(dir.path(), ".hidden", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Spool::Open(dir.path(), "", 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClientSpool, UncreatableRootIsAnIoError) {
  TempDir dir;
  WriteFile(dir.path() + "/file", "x");
  EXPECT_EQ(Spool::Open(dir.path() + "/file/sub", "me", 1).status().code(), StatusCode::kIo);
}

}  // namespace
}  // namespace cpuledger::client
