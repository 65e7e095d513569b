#include "client/error_log.h"

#include <unistd.h>

#include <atomic>
#include <string>

namespace cpuledger::client {
namespace {

static_assert(static_cast<int>(ErrorKind::kCount) <= 32, "one bit per kind");
std::atomic<uint32_t> g_logged{0};

}  // namespace

bool LogOnce(ErrorKind kind, std::string_view message) {
  const uint32_t bit = 1u << static_cast<uint32_t>(kind);
  if (g_logged.fetch_or(bit, std::memory_order_relaxed) & bit) return false;
  // One write() so lines from several processes do not interleave mid-line.
  std::string line = "cpuledger: ";
  line.append(message);
  line.push_back('\n');
  const ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  return true;
}

}  // namespace cpuledger::client
