// src/store/sqlite/db.h — RAII handles for SQLite: a connection (Db), a
// prepared statement (Stmt), a statement's use (StmtUse) and a transaction
// (Txn). Every sqlite3* and sqlite3_stmt* in the store is owned by one of
// these, and every SQLite error becomes a Status (kIo, with SQLite's message).
//
//   Result<Db> db = Db::Open(path, /*read_only=*/false);
//   Result<Stmt> ins = db->Prepare("INSERT INTO t(a, b) VALUES (?1, ?2)");
//   Txn txn(*db);
//   if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
//   { StmtUse use(*ins);            // resets the statement on every exit path
//     use.Bind(1, int64_t{7}); use.Bind(2, "text");
//     if (Status s = use.Run(); !s.ok()) return s; }
//   return txn.Commit();            // the destructor rolls back if not committed
//
// Text and blob arguments are bound without copying (SQLITE_STATIC): they
// must outlive the StmtUse that bound them.
//
// Thread-safety: a Db and its statements belong to one thread at a time
// (connections are opened SQLITE_OPEN_NOMUTEX); the store hands whole
// connections between threads, never shares one.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "base/status.h"

namespace cpuledger::store::sqlite {

// SqliteStatus() — IoError("<what>: <sqlite message> (code N)"), or OK for SQLITE_OK/ROW/DONE.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

class Stmt;

// Db — one connection.
class Db {
 public:
  Db() = default;
  ~Db();
  Db(Db&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Db::Open() — opens (creating unless read_only) `path`.
  // RETURNS: Io when SQLite cannot open it.
  static Result<Db> Open(const std::string& path, bool read_only);

  // Db::Exec() — runs one or more statements that return no rows.
  Status Exec(std::string_view sql);
  // Db::Prepare() — a statement kept for the connection's lifetime.
  Result<Stmt> Prepare(std::string_view sql);
  // Db::QueryInt64() — the first column of the first row of `sql` (0 if none).
  Result<int64_t> QueryInt64(std::string_view sql);

  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// Stmt — one prepared statement.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt();
  Stmt(Stmt&& other) noexcept : st_(std::exchange(other.st_, nullptr)) {}
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  sqlite3_stmt* get() const { return st_; }

 private:
  friend class Db;
  explicit Stmt(sqlite3_stmt* st) : st_(st) {}
  sqlite3_stmt* st_ = nullptr;
};

// StmtUse — one execution of a Stmt: bind, step, read columns. Resets the
// statement and clears its bindings on destruction, so no statement keeps a
// read snapshot open or points at a dead buffer. Parameter and column numbers
// follow SQLite: parameters from 1, columns from 0.
class StmtUse {
 public:
  explicit StmtUse(Stmt& stmt) : st_(stmt.get()) {}
  ~StmtUse();
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;

  void Bind(int i, int64_t v) { sqlite3_bind_int64(st_, i, v); }
  void Bind(int i, double v) { sqlite3_bind_double(st_, i, v); }
  void Bind(int i, std::string_view text) {
    sqlite3_bind_text(st_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void Bind(int i, const char* text) { Bind(i, std::string_view(text)); }
  // Text is bound without a copy (SQLITE_STATIC): a temporary would dangle
  // before the statement runs, so binding one does not compile.
  void Bind(int i, std::string&& text) = delete;
  void BindBlob(int i, std::string_view blob) {
    sqlite3_bind_blob(st_, i, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
  }
  void BindNull(int i) { sqlite3_bind_null(st_, i); }

  // StmtUse::Step() — RETURNS: true with a row to read, false when done.
  Result<bool> Step();
  // StmtUse::Run() — steps until done (for statements without rows).
  Status Run();

  bool IsNull(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
  int64_t Int64(int col) const { return sqlite3_column_int64(st_, col); }
  double Double(int col) const { return sqlite3_column_double(st_, col); }
  // Text() / Blob() — valid until the next Step() or the end of this use.
  std::string_view Text(int col) const;
  std::string_view Blob(int col) const;

 private:
  sqlite3_stmt* st_;
};

// Txn — a transaction that rolls back unless committed.
class Txn {
 public:
  enum Mode { kDeferred, kImmediate };
  explicit Txn(Db& db) : db_(db) {}
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  // Txn::Begin() — kImmediate takes the write lock now (the writer);
  // kDeferred starts a read snapshot at the first read (the readers).
  Status Begin(Mode mode);
  Status Commit();
  // Txn::Rollback() — idempotent; errors are ignored (nothing is left to undo).
  void Rollback();

 private:
  Db& db_;
  bool open_ = false;
};

// BindOptional() — `value` at `i`, or NULL when unset (for "?i IS NULL OR
// column = ?i" filters). The text is bound without a copy: it must outlive the use.
inline void BindOptional(StmtUse& use, int i, const std::optional<std::string>& value) {
  if (value.has_value())
    use.Bind(i, std::string_view(*value));
  else
    use.BindNull(i);
}

// BindAll() — the tuple's elements at ?1, ?2, ... in order (a row key).
template <typename... T>
void BindAll(StmtUse& use, const std::tuple<T...>& values) {
  int i = 0;
  std::apply([&](const auto&... v) { (use.Bind(++i, v), ...); }, values);
}

// ForEachRow() — runs `fn(use)` (returning Status) for every row of `use`;
// stops at the first error.
template <typename Fn>
Status ForEachRow(StmtUse& use, Fn&& fn) {
  for (;;) {
    Result<bool> row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) return OkStatus();
    if (Status s = fn(use); !s.ok()) return s;
  }
}

}  // namespace cpuledger::store::sqlite
