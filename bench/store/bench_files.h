// bench/store/bench_files.h — the benches' scratch store files.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace cpuledger::store {

// TempPath() — a store file in the temp dir, unique to this process.
inline std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "." + std::to_string(getpid()) + ".sqlite"))
      .string();
}

// RemoveStoreFiles() — the file and its WAL and shared-memory files.
inline void RemoveStoreFiles(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

}  // namespace cpuledger::store
