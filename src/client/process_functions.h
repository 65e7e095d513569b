// src/client/process_functions.h — the functions this process's profiles
// name, each under an id kept for the life of the process, so that a batch
// lists each function once however many of its profiles call it.
//
// The profiler adds a function's encoded entry on its first profile and
// writes the id in its profiles' nodes (Profile.functions_in_batch); the
// recorder appends the entries a batch's profiles use to the serialized
// batch, each at its id: Batch.functions[id] is function `id`, and the ids
// no profile of the batch uses are empty entries (two bytes each).
//
//   std::optional<uint32_t> id = ProcessFunctions::Get().Add(body);
//   ProcessFunctions::Get().AppendTable(ids, &serialized_batch);
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace cpuledger::client {

class ProcessFunctions {
 public:
  // kMaxFunctions — ids stay below this (and below record::kMaxProfileFunctions);
  // past it a profile lists its functions itself.
  static constexpr uint32_t kMaxFunctions = 1 << 16;

  // ProcessFunctions::Get() — the process's table.
  static ProcessFunctions& Get();

  // ProcessFunctions::Add() — a new entry, the serialized body of a
  // record.ProfileFunction (the caller keeps one id per function). RETURNS:
  // its id, or none when kMaxFunctions are taken. Thread-safe.
  std::optional<uint32_t> Add(std::string body);

  // ProcessFunctions::AppendTable() — Batch.functions entries 0..max(ids)
  // onto `batch_bytes`, a serialized Batch (protobuf reads a repeated field
  // from every occurrence): the entry of each id in `ids`, empty ones
  // between. REQUIRES: `ids` sorted, unique, each from Add(). Thread-safe.
  // COST: one lock; a copy of each listed entry.
  void AppendTable(std::span<const uint32_t> ids, std::string* batch_bytes) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> bodies_;  // by id
};

}  // namespace cpuledger::client
