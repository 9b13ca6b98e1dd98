// FaultInjectionEnv: an Env wrapper for durability tests, after LevelDB's
// db/fault_injection_test.cc, adapted to overwrites in preallocated files.
//
// Every write goes through to the wrapped Env at once, but the wrapper
// remembers each one that has not been synced yet: its file, offset, length,
// the bytes it overwrote and the file size before it. DataSync/Sync of a file
// forgets that file's unsynced writes. Files created since the last SyncDir of
// their directory are remembered too, and so are renames.
//
// SimulateCrash() then does what a power cut does to the page cache:
//  - kDropUnsynced: every unsynced write is undone (old bytes restored, files
//    cut back to their size before the write), renames not made durable by a
//    SyncDir are undone, and files created without a SyncDir of their
//    directory are deleted;
//  - kTorn: the same, except that the first k unsynced writes (in the global
//    order they were made, k random) survive and write k+1 survives partly (a
//    random prefix), as when the disk wrote some sectors of a batch.
// Removed files are not brought back (as in LevelDB's version).
//
// Faults to aim: fail the Nth write or the Nth sync from now with EIO (once),
// or "crash" after K more mutating operations (writes, syncs, directory syncs,
// creates, removes, renames, truncates): from then on every mutating
// operation fails with EIO until SimulateCrash() or ResetFaults(). Reads are
// never failed. A sync delay makes DataSync/Sync slow (back-pressure tests).
//
// Thread-safety: all methods are thread-safe. SimulateCrash must be called
// when no other thread uses the env or its files (stop the store first);
// File objects opened before it must not be used after it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/thread_annotations.h"
#include "logstore/node/env.h"

namespace dlog::node {

class FaultInjectionEnv final : public Env {
 public:
  enum class CrashMode { kDropUnsynced, kTorn };

  // `base` must outlive this env. `seed` drives the torn mode's choices.
  explicit FaultInjectionEnv(Env* base, uint64_t seed = 1);
  ~FaultInjectionEnv() override;

  // Drops what a crash would drop (see above), then resets every fault
  // setting. Returns the first error of the underlying file operations.
  Status SimulateCrash(CrashMode mode);

  // The n-th (1-based) PWritev from now fails with EIO, once. 0 disarms.
  // With `path_suffix`, only writes to files whose path ends with it count.
  void FailNthWrite(uint64_t n, const std::string& path_suffix = "");
  // The n-th (1-based) DataSync or Sync from now fails with EIO, once (same
  // filter). 0 disarms.
  void FailNthSync(uint64_t n, const std::string& path_suffix = "");
  // After k more mutating operations succeed, every later one fails with EIO.
  void CrashAfterOps(uint64_t k);
  // Every DataSync/Sync sleeps this long before syncing (0: no delay).
  void SetSyncDelayUs(int64_t us);
  // Disarms every fault (not the record of unsynced writes).
  void ResetFaults();

  // Counters since construction.
  uint64_t ops() const { return ops_.load(); }        // mutating operations attempted
  uint64_t writes() const { return writes_.load(); }  // PWritev calls that succeeded
  uint64_t syncs() const { return syncs_.load(); }    // DataSync/Sync calls that succeeded
  bool crashed() const { return crashed_.load(); }    // the crash point was passed
  uint64_t unsynced_writes() const;

  // Env
  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override;
  Status RemoveFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override { return base_->ListDir(dir); }
  Status CreateDir(const std::string& dir) override;
  Status SyncDir(const std::string& dir) override;
  bool Exists(const std::string& path) override { return base_->Exists(path); }
  bool IsDir(const std::string& path) override { return base_->IsDir(path); }
  Result<uint64_t> FileSize(const std::string& path) override { return base_->FileSize(path); }
  Result<uint64_t> FreeBytes(const std::string& path) override { return base_->FreeBytes(path); }

 private:
  friend class FaultFile;
  enum class OpKind { kWrite, kSync, kOther };

  // One unsynced change of a file's bytes: a write, or a truncate (len 0).
  struct Unsynced {
    std::string path;
    uint64_t offset = 0;
    uint64_t len = 0;        // bytes written at offset (0 for a truncate)
    uint64_t prev_size = 0;  // file size before the change
    std::string old_bytes;   // bytes of [offset, min(offset+len or prev_size, prev_size)) before
  };
  struct Rename {
    std::string from, to;
  };

  // Counts one mutating operation; returns EIO if a fault fires.
  Status CheckFault(OpKind kind, const std::string& path) DLOG_REQUIRES(mu_);
  Status FileWrite(File* base, uint64_t offset, const struct iovec* iov, int iovcnt);
  Status FileSync(File* base, bool data_only);
  Status FileTruncate(File* base, uint64_t size);
  Status FileFallocate(File* base, uint64_t offset, uint64_t len);
  void ForgetPath(const std::string& path) DLOG_REQUIRES(mu_);
  Status Revert(const Unsynced& u, uint64_t keep_prefix) DLOG_REQUIRES(mu_);

  Env* const base_;
  mutable Mutex mu_;
  std::mt19937_64 rng_ DLOG_GUARDED_BY(mu_);
  std::vector<Unsynced> unsynced_ DLOG_GUARDED_BY(mu_);                          // in the order made
  std::map<std::string, std::set<std::string>> new_files_ DLOG_GUARDED_BY(mu_);  // dir -> paths
  std::map<std::string, std::vector<Rename>> renames_ DLOG_GUARDED_BY(mu_);      // dir -> renames
  uint64_t fail_write_in_ DLOG_GUARDED_BY(mu_) = 0;
  uint64_t fail_sync_in_ DLOG_GUARDED_BY(mu_) = 0;
  std::string fail_write_suffix_ DLOG_GUARDED_BY(mu_);
  std::string fail_sync_suffix_ DLOG_GUARDED_BY(mu_);
  bool crash_armed_ DLOG_GUARDED_BY(mu_) = false;
  uint64_t crash_ops_left_ DLOG_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> sync_delay_us_{0};
  std::atomic<uint64_t> ops_{0}, writes_{0}, syncs_{0};
  std::atomic<bool> crashed_{false};
};

}  // namespace dlog::node
