// tests/cpp/client/client_test_util.h — small helpers shared by the client tests.
#pragma once

#include "temp_dir.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "base/duration.h"
#include "record/record.pb.h"

namespace cpuledger::client::test {

using cpuledger::test_support::TempDir;

// MakeRecord() — a record the server accepts, with request_id `id`.
inline record::RequestRecord MakeRecord(const std::string& id,
                                        const std::string& endpoint = "/items/<id>/") {
  record::RequestRecord r;
  r.set_service("shop");
  r.set_endpoint(endpoint);
  r.set_method("GET");
  r.set_status(200);
  r.set_host("web-1");
  r.set_start_time_unix_us(NowUnixUs());
  r.set_wall_us(1500);
  r.mutable_cpu()->set_cpu_ns(1'200'000);
  r.mutable_cpu()->set_counter_source("thread_cputime");
  r.set_sample_rate(1.0);
  r.set_request_id(id);
  return r;
}

}  // namespace cpuledger::client::test
