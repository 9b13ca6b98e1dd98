// Env: the file-system seam of the storage node. The journal and the cookie
// go through it (RocksDB keeps its own files), so a test can put a
// FaultInjectionEnv (fault_injection_env.h) between the node and the disk and
// drop unsynced data on a simulated crash.
//
// Errors: every call returns a Status in CommonErrc (kIoError with the errno
// text, kNotFound for a missing path, kAlreadyExists for an exclusive create
// of an existing file). Nothing throws.
//
// Thread-safety: an Env is shared by every thread of a store; its methods are
// thread-safe. A File may be used from several threads at once for PRead; the
// store writes each file from one thread at a time.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace dlog::node {

class File {
 public:
  virtual ~File() = default;

  // Writes all iov bytes at `offset` (looping over short writes and IOV_MAX).
  virtual Status PWritev(uint64_t offset, const struct iovec* iov, int iovcnt) = 0;
  // Reads up to n bytes at `offset` into buf; *got is less than n only at end
  // of file.
  virtual Status PRead(uint64_t offset, size_t n, uint8_t* buf, size_t* got) const = 0;
  virtual Status DataSync() = 0;  // fdatasync(2)
  virtual Status Sync() = 0;      // fsync(2)
  // Reserves space without writing (fallocate(2)); the store does not rely on
  // it: journal files are zero-filled with real writes (WriteZeros).
  virtual Status Fallocate(uint64_t offset, uint64_t len) = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Result<uint64_t> Size() const = 0;
  virtual const std::string& path() const = 0;

  // Helpers built on the virtuals above (so wrappers see plain writes).
  Status PWrite(uint64_t offset, const void* data, size_t n);
  // Writes `len` zero bytes at `offset` in chunks of at most 1 MiB.
  Status WriteZeros(uint64_t offset, uint64_t len);
  // Reads exactly n bytes or fails with kCorruption ("short read").
  Status PReadExact(uint64_t offset, size_t n, uint8_t* buf) const;
};

enum class OpenMode {
  kRead,           // existing file, read only
  kReadWrite,      // existing file, read and write
  kCreateExcl,     // new file (fails with kAlreadyExists), read and write
  kCreateOrTrunc,  // new or emptied file, read and write
};

class Env {
 public:
  virtual ~Env() = default;

  // The real file system (process-wide singleton, never destroyed).
  static Env* Posix();

  virtual Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // Creates `dir` (and missing parents); OK if it exists.
  virtual Status CreateDir(const std::string& dir) = 0;
  // fsync(2) of a directory, making created, renamed and removed entries durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual bool IsDir(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Bytes available to an unprivileged user on the file system of `path`.
  virtual Result<uint64_t> FreeBytes(const std::string& path) = 0;
};

// Status for a failed system call: CommonErrc::kIoError (kNotFound for
// ENOENT) with "<what> <path>: <strerror>".
Status ErrnoStatus(int err, const std::string& what, const std::string& path);

std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace dlog::node
