// src/base/status.h — errors as values for the whole C++ core.
//
// A Status is a code plus a message a user can act on. Result<T> holds either
// a value or a non-OK Status. Both are [[nodiscard]]: dropping one is a
// compile warning (and -Werror makes it an error), so failures cannot be
// ignored by accident.
//
//   Result<CounterSet> set = CounterSet::Open(options);
//   if (!set.ok()) { std::cerr << set.status().ToString(); return 1; }
//   Reading r = set->Read();
//
// The set of codes is small and fixed; HTTP statuses are mapped from them only
// in src/server. NOTE: the text of ToString() is for people and may change.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cpuledger {

// StatusCode — pick the most specific one:
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,    // the caller's input is wrong (bad record, bad flag); do not retry
  kNotFound = 2,           // the thing asked for does not exist
  kUnavailable = 3,        // not available on this machine or right now; may retry later
  kPermissionDenied = 4,   // refused by policy (perf_event_paranoid, token, seccomp)
  kResourceExhausted = 5,  // a bound was hit (queue full, body too large, fds)
  kInternal = 6,           // a bug or a broken invariant inside cpuledger
  kIo = 7,                 // the filesystem, database or network failed
};

// StatusCodeName() — "invalid_argument", "unavailable", ...
std::string_view StatusCodeName(StatusCode code);

// Status — a code and a message; default-constructed it is OK.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  // Status::ok() — true when the operation succeeded.
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Status::ToString() — "unavailable: no PMU ..."; "ok" when OK.
  std::string ToString() const;
  // Status::IgnoreError() — says in the code that dropping this status is deliberate.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status PermissionDenied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIo, std::move(m)}; }

// Result<T> — a T or a non-OK Status (a small std::expected for C++20).
// REQUIRES: value access only when ok(); asserted in debug builds.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // Result::status() — OK when a value is held.
  Status status() const { return ok() ? OkStatus() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cpuledger
