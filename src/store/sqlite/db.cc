#include "store/sqlite/db.h"

namespace cpuledger::store::sqlite {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return OkStatus();
  std::string message(what);
  message += ": ";
  // sqlite3_errmsg() describes the connection's latest error, which is this
  // one when called right after the failing call; errstr() is the fallback.
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " (sqlite code " + std::to_string(rc) + ")";
  return IoError(std::move(message));
}

Db::~Db() {
  // close_v2 defers the close until statements are finalized; the store
  // finalizes them first (members are destroyed before the Db they use).
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Result<Db> Db::Open(const std::string& path, bool read_only) {
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db;
  db.db_ = raw;  // owned even on failure: sqlite3_open_v2 may allocate a handle
  if (rc != SQLITE_OK) return SqliteStatus(raw, rc, "cannot open " + path);
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

Status Db::Exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return OkStatus();
  std::string message = "sqlite exec failed: ";
  message += err != nullptr ? err : sqlite3_errstr(rc);
  message += " (sqlite code " + std::to_string(rc) + ") in: " + text.substr(0, 80);
  sqlite3_free(err);
  return IoError(std::move(message));
}

Result<Stmt> Db::Prepare(std::string_view sql) {
  sqlite3_stmt* st = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st);
    return SqliteStatus(db_, rc, "prepare \"" + std::string(sql.substr(0, 80)) + "\"");
  }
  return Stmt(st);
}

Result<int64_t> Db::QueryInt64(std::string_view sql) {
  Result<Stmt> st = Prepare(sql);
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  Result<bool> row = use.Step();
  if (!row.ok()) return row.status();
  return *row ? use.Int64(0) : int64_t{0};
}

Stmt::~Stmt() { sqlite3_finalize(st_); }

Stmt& Stmt::operator=(Stmt&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(st_);
    st_ = std::exchange(other.st_, nullptr);
  }
  return *this;
}

StmtUse::~StmtUse() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

Result<bool> StmtUse::Step() {
  const int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(sqlite3_db_handle(st_), rc,
                      std::string("step \"") + std::string(sqlite3_sql(st_)).substr(0, 80) + "\"");
}

Status StmtUse::Run() {
  for (;;) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return OkStatus();
  }
}

std::string_view StmtUse::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
  if (p == nullptr) return {};
  return {p, static_cast<size_t>(sqlite3_column_bytes(st_, col))};
}

std::string_view StmtUse::Blob(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, col));
  if (p == nullptr) return {};
  return {p, static_cast<size_t>(sqlite3_column_bytes(st_, col))};
}

Txn::~Txn() { Rollback(); }

Status Txn::Begin(Mode mode) {
  Status s = db_.Exec(mode == kImmediate ? "BEGIN IMMEDIATE" : "BEGIN");
  open_ = s.ok();
  return s;
}

Status Txn::Commit() {
  Status s = db_.Exec("COMMIT");
  if (s.ok()) open_ = false;
  return s;
}

void Txn::Rollback() {
  if (!open_) return;
  open_ = false;
  // Fails only when SQLite already rolled back (e.g. after SQLITE_FULL).
  db_.Exec("ROLLBACK").IgnoreError();
}

}  // namespace cpuledger::store::sqlite
