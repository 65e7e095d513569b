// src/store/clickhouse/profiles.h — the ClickHouse store's function entities
// (functions.h) and peak-minute metric (efficiency.h): the profile_sums rows
// a batch adds, and the reads that answer FunctionTree(), FunctionMomentsOf()
// and Efficiency() through the Distributed tables (sql.h).
//
//   RowBinary rows;
//   Result<size_t> days = AppendProfileRows(batch, profile_flags, rows);
//   shard.Insert("INSERT INTO db.profile_sums_local FORMAT RowBinary", rows.data());
//   Result<profile::CallTree> tree = ReadFunctionTree(shard, names, query);
//
// Ids are hashes, the same on every shard and server: a function's is
// XXH64 of its key "file:line:name", a call path's XXH64 of (parent path id,
// function id), the root's 0. A batch's rows are summed within the batch
// (one row per slice, hour and id) and carry no batch id; its marker rows
// (one per UTC day it has profiles in, in that day's partition) do, so a
// retried batch can tell whether they are in (clickhouse_store.h, 3).
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "profile/call_tree.h"
#include "record/record.pb.h"
#include "store/clickhouse/http.h"
#include "store/clickhouse/row_binary.h"
#include "store/clickhouse/sql.h"
#include "store/detection.h"
#include "store/functions.h"
#include "store/query.h"

namespace cpuledger::store::clickhouse {

// ProfileDays() — the UTC days `batch` has profiled records in: its marker rows.
size_t ProfileDays(const record::Batch& batch);

// AppendProfileRows() — `batch`'s profile_sums rows (ProfileSumColumns()
// order) onto `out`: per (hour, slice) of every profiled record — all
// requests, and each of its flags' values — the profiled requests, the
// function moments and, for the all-requests slice and the flags in
// `profile_flags` (unset: every flag), the call-path sums; then the markers
// when the batch has a sender. RETURNS: InvalidArgument for a profile whose
// nodes are out of order or index no function.
Status AppendProfileRows(const record::Batch& batch,
                         const std::optional<std::set<std::string>>& profile_flags, RowBinary& out);

// AppendFunctionCodeRows() — `batch`'s function_codes rows
// (FunctionCodeColumns() order) onto `out`: one per (service, commit,
// function key) whose profiles carried a code hash (not 0), the hash of the
// newest record (ties: the later in the batch) and that record's start.
// They carry no batch id: a row stored twice answers the same.
// REQUIRES: the batch validated (DecodeBatch: node function indices in range).
// COST: per profiled record, an array check per node and a hash lookup per
// distinct function new to its (service, commit) in the batch.
void AppendFunctionCodeRows(const record::Batch& batch, RowBinary& out);

// ReadFunctionCodes() — FunctionCodesOf() (store.h) read through `shard`.
Result<std::vector<FunctionCode>> ReadFunctionCodes(ShardClient& shard, const SchemaNames& names,
                                                    const FunctionCodesQuery& query);

// ReadFunctionTree() — FunctionTree() (store.h) read through `shard`.
// RETURNS: as Store::FunctionTree; Internal for an answer of the wrong shape.
Result<profile::CallTree> ReadFunctionTree(ShardClient& shard, const SchemaNames& names,
                                           const FunctionQuery& query);

// ReadFunctionMoments() — FunctionMomentsOf() (store.h) read through `shard`.
Result<std::vector<FunctionMoments>> ReadFunctionMoments(ShardClient& shard,
                                                         const SchemaNames& names,
                                                         const FunctionMomentsQuery& query);

// ReadEfficiency() — Efficiency() (store.h) read through `shard`, per
// service by name.
Result<std::vector<ServiceEfficiency>> ReadEfficiency(ShardClient& shard, const SchemaNames& names,
                                                      const EfficiencySpec& spec);

}  // namespace cpuledger::store::clickhouse
