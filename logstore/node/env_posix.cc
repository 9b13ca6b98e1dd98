// The real Env over POSIX system calls.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "logstore/node/env.h"

namespace dlog::node {

Status ErrnoStatus(int err, const std::string& what, const std::string& path) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  if (err == ENOENT) return Status::Error(CommonErrc::kNotFound, std::move(msg));
  if (err == EEXIST) return Status::Error(CommonErrc::kAlreadyExists, std::move(msg));
  return Status::Error(CommonErrc::kIoError, std::move(msg));
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

namespace {
constexpr size_t kZeroChunk = 1 << 20;
const uint8_t* ZeroBuffer() {
  static const uint8_t* zeros = new uint8_t[kZeroChunk]();  // never freed
  return zeros;
}
}  // namespace

Status File::PWrite(uint64_t offset, const void* data, size_t n) {
  struct iovec iov;
  iov.iov_base = const_cast<void*>(data);
  iov.iov_len = n;
  return PWritev(offset, &iov, 1);
}

Status File::WriteZeros(uint64_t offset, uint64_t len) {
  while (len > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, kZeroChunk));
    DLOG_RETURN_IF_ERROR(PWrite(offset, ZeroBuffer(), n));
    offset += n;
    len -= n;
  }
  return Status::OK();
}

Status File::PReadExact(uint64_t offset, size_t n, uint8_t* buf) const {
  size_t got = 0;
  DLOG_RETURN_IF_ERROR(PRead(offset, n, buf, &got));
  if (got != n) {
    return Status::Error(CommonErrc::kCorruption, "short read of " + path() + " at " + std::to_string(offset) +
                                                      ": wanted " + std::to_string(n) + ", got " + std::to_string(got));
  }
  return Status::OK();
}

namespace {

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }

  Status PWritev(uint64_t offset, const struct iovec* iov, int iovcnt) override {
    // pwritev may write less than asked and takes at most IOV_MAX vectors:
    // copy the window we are working on so the caller's array stays intact.
    struct iovec local[64];
    int i = 0;
    size_t skip = 0;  // bytes of iov[i] already written
    while (true) {
      while (i < iovcnt && iov[i].iov_len == skip) {  // empty or finished vectors
        ++i;
        skip = 0;
      }
      if (i >= iovcnt) break;
      int n = 0;
      for (int j = i; j < iovcnt && n < 64; ++j) {
        if (j == i) {
          local[n].iov_base = static_cast<uint8_t*>(iov[j].iov_base) + skip;
          local[n].iov_len = iov[j].iov_len - skip;
        } else {
          local[n] = iov[j];
        }
        ++n;
      }
      ssize_t w = ::pwritev(fd_, local, n, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "pwritev", path_);
      }
      if (w == 0) return Status::Error(CommonErrc::kIoError, "pwritev wrote nothing to " + path_);
      offset += static_cast<uint64_t>(w);
      size_t left = static_cast<size_t>(w);
      while (i < iovcnt && left > 0) {
        const size_t avail = iov[i].iov_len - skip;
        if (left >= avail) {
          left -= avail;
          ++i;
          skip = 0;
        } else {
          skip += left;
          left = 0;
        }
      }
    }
    return Status::OK();
  }

  Status PRead(uint64_t offset, size_t n, uint8_t* buf, size_t* got) const override {
    *got = 0;
    while (*got < n) {
      ssize_t r = ::pread(fd_, buf + *got, n - *got, static_cast<off_t>(offset + *got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "pread", path_);
      }
      if (r == 0) break;
      *got += static_cast<size_t>(r);
    }
    return Status::OK();
  }

  Status DataSync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus(errno, "fdatasync", path_);
    return Status::OK();
  }
  Status Sync() override {
    if (::fsync(fd_) != 0) return ErrnoStatus(errno, "fsync", path_);
    return Status::OK();
  }
  Status Fallocate(uint64_t offset, uint64_t len) override {
    int r = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(len));
    if (r != 0) return ErrnoStatus(r, "fallocate", path_);
    return Status::OK();
  }
  Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return ErrnoStatus(errno, "ftruncate", path_);
    return Status::OK();
  }
  Result<uint64_t> Size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return ErrnoStatus(errno, "fstat", path_);
    return static_cast<uint64_t>(st.st_size);
  }
  const std::string& path() const override { return path_; }

 private:
  const int fd_;
  const std::string path_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::kRead:
        flags |= O_RDONLY;
        break;
      case OpenMode::kReadWrite:
        flags |= O_RDWR;
        break;
      case OpenMode::kCreateExcl:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
      case OpenMode::kCreateOrTrunc:
        flags |= O_RDWR | O_CREAT | O_TRUNC;
        break;
    }
    int fd;
    do {
      fd = ::open(path.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus(errno, "open", path);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus(errno, "unlink", path);
    return Status::OK();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus(errno, "rename to " + to + " of", from);
    return Status::OK();
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoStatus(errno, "opendir", dir);
    std::vector<std::string> out;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      out.emplace_back(e->d_name);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

  Status CreateDir(const std::string& dir) override {
    if (dir.empty()) return Status::Error(CommonErrc::kInvalidArgument, "empty directory name");
    // Create parents first.
    for (size_t pos = 1; pos != std::string::npos;) {
      pos = dir.find('/', pos);
      std::string part = dir.substr(0, pos);
      if (!part.empty() && ::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, "mkdir", part);
      }
      if (pos != std::string::npos) ++pos;
    }
    if (!IsDir(dir)) return Status::Error(CommonErrc::kIoError, dir + " exists and is not a directory");
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "open directory", dir);
    Status st;
    if (::fsync(fd) != 0) st = ErrnoStatus(errno, "fsync directory", dir);
    ::close(fd);
    return st;
  }

  bool Exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  bool IsDir(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<uint64_t> FreeBytes(const std::string& path) override {
    struct statvfs st;
    if (::statvfs(path.c_str(), &st) != 0) return ErrnoStatus(errno, "statvfs", path);
    return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
  }
};

}  // namespace

Env* Env::Posix() {
  static Env* env = new PosixEnv();  // never destroyed: used until exit
  return env;
}

}  // namespace dlog::node
