// Tests Recorder::AfterForkInChild() with a real fork(): the child's records
// reach the server under a new sender id, and the parent keeps working.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "client/recorder.h"
#include "client/recorder_testing.h"
#include "client_test_util.h"
#include "ingest_test_server.h"

namespace cpuledger::client {
namespace {

using namespace std::chrono_literals;
using test::IngestTestServer;
using test::MakeRecord;
using test::TempDir;

// ChildMain() — runs in the forked child; its exit code is the verdict
// (gtest assertions do not work across fork).
int ChildMain(Recorder& rec, const std::string& parent_id) {
  rec.AfterForkInChild();
  if (rec.sender_id().empty() || rec.sender_id() == parent_id) return 2;
  for (int i = 0; i < 3; ++i)
    if (!rec.Submit(MakeRecord("child-" + std::to_string(i)))) return 3;
  rec.Count("/items/<id>/", "child-user", true);
  if (!rec.Flush(5s).ok()) return 4;
  const RecorderStats s = rec.stats();
  if (s.sent != 3 || s.submitted != 3) return 5;
  if (!rec.Close(5s).ok()) return 6;
  return 0;
}

TEST(ClientFork, ChildSendsUnderANewSenderAndParentGoesOn) {
  IngestTestServer server;
  ASSERT_TRUE(server.Start());
  TempDir spool;
  RecorderOptions o;
  o.server_url = server.url();
  o.service = "shop";
  o.host = "web-1";
  o.spool_dir = spool.path();
  o.batch_max_delay = 60s;  // the parent's sender stays idle around the fork
  Result<std::unique_ptr<Recorder>> started = Recorder::Start(o);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  Recorder& rec = **started;
  const std::string parent_id = rec.sender_id();
  ASSERT_TRUE(rec.Submit(MakeRecord("parent-0")));
  ASSERT_TRUE(rec.Flush(5s).ok());
  // Records queued before the fork are the parent's to send.
  ASSERT_TRUE(rec.Submit(MakeRecord("parent-1")));
  // fork() copies locks held by other threads. glibc's malloc copes; the
  // allocator of gcc 12's ASan does not, so let the threads just started
  // (sender, HTTP server pool) finish their start-up allocations first.
  std::this_thread::sleep_for(20ms);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(ChildMain(rec, parent_id));

  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);

  ASSERT_TRUE(rec.Submit(MakeRecord("parent-2")));
  ASSERT_TRUE(rec.Flush(5s).ok());
  std::set<std::string> senders;
  std::vector<std::string> child_ids, parent_ids;
  int child_tallies = 0;
  for (const auto& s : server.stored()) {
    senders.insert(s.sender);
    for (const auto& r : s.batch.records())
      (s.sender == parent_id ? parent_ids : child_ids).push_back(r.request_id());
    if (s.sender != parent_id) child_tallies += s.batch.tallies_size();
  }
  EXPECT_EQ(senders.size(), 2u);
  EXPECT_EQ(child_ids, (std::vector<std::string>{"child-0", "child-1", "child-2"}));
  EXPECT_EQ(parent_ids, (std::vector<std::string>{"parent-0", "parent-1", "parent-2"}));
  EXPECT_EQ(child_tallies, 1);
  EXPECT_EQ(rec.stats().sent, 3u);
  ASSERT_TRUE(rec.Close(5s).ok());
}

}  // namespace
}  // namespace cpuledger::client
