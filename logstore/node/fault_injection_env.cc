#include "logstore/node/fault_injection_env.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "common/logging.h"

namespace dlog::node {

namespace {
std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
std::string NormDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}
}  // namespace

class FaultFile final : public File {
 public:
  FaultFile(FaultInjectionEnv* env, std::unique_ptr<File> base) : env_(env), base_(std::move(base)) {}

  Status PWritev(uint64_t offset, const struct iovec* iov, int iovcnt) override {
    return env_->FileWrite(base_.get(), offset, iov, iovcnt);
  }
  Status PRead(uint64_t offset, size_t n, uint8_t* buf, size_t* got) const override {
    return base_->PRead(offset, n, buf, got);
  }
  Status DataSync() override { return env_->FileSync(base_.get(), true); }
  Status Sync() override { return env_->FileSync(base_.get(), false); }
  Status Fallocate(uint64_t offset, uint64_t len) override { return env_->FileFallocate(base_.get(), offset, len); }
  Status Truncate(uint64_t size) override { return env_->FileTruncate(base_.get(), size); }
  Result<uint64_t> Size() const override { return base_->Size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionEnv* const env_;
  std::unique_ptr<File> base_;
};

FaultInjectionEnv::FaultInjectionEnv(Env* base, uint64_t seed) : base_(base), rng_(seed) {}
FaultInjectionEnv::~FaultInjectionEnv() = default;

void FaultInjectionEnv::FailNthWrite(uint64_t n, const std::string& path_suffix) {
  MutexLock l(&mu_);
  fail_write_in_ = n;
  fail_write_suffix_ = path_suffix;
}
void FaultInjectionEnv::FailNthSync(uint64_t n, const std::string& path_suffix) {
  MutexLock l(&mu_);
  fail_sync_in_ = n;
  fail_sync_suffix_ = path_suffix;
}
void FaultInjectionEnv::CrashAfterOps(uint64_t k) {
  MutexLock l(&mu_);
  crash_armed_ = true;
  crash_ops_left_ = k;
  crashed_ = false;
}
void FaultInjectionEnv::SetSyncDelayUs(int64_t us) { sync_delay_us_ = us; }
void FaultInjectionEnv::ResetFaults() {
  MutexLock l(&mu_);
  fail_write_in_ = 0;
  fail_sync_in_ = 0;
  crash_armed_ = false;
  crashed_ = false;
  sync_delay_us_ = 0;
}

uint64_t FaultInjectionEnv::unsynced_writes() const {
  MutexLock l(&mu_);
  return unsynced_.size();
}

Status FaultInjectionEnv::CheckFault(OpKind kind, const std::string& path) {
  ops_.fetch_add(1);
  if (crash_armed_) {
    if (crash_ops_left_ == 0) {
      crashed_ = true;
      return ErrnoStatus(EIO, "injected crash: operation on", path);
    }
    --crash_ops_left_;
  }
  auto matches = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (kind == OpKind::kWrite && fail_write_in_ > 0 && matches(fail_write_suffix_) && --fail_write_in_ == 0) {
    return ErrnoStatus(EIO, "injected write error:", path);
  }
  if (kind == OpKind::kSync && fail_sync_in_ > 0 && matches(fail_sync_suffix_) && --fail_sync_in_ == 0) {
    return ErrnoStatus(EIO, "injected fdatasync error:", path);
  }
  return Status::OK();
}

Status FaultInjectionEnv::FileWrite(File* base, uint64_t offset, const struct iovec* iov, int iovcnt) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kWrite, base->path()));
  uint64_t len = 0;
  for (int i = 0; i < iovcnt; ++i) len += iov[i].iov_len;
  DLOG_ASSIGN_OR_RETURN(uint64_t size, base->Size());
  Unsynced u;
  u.path = base->path();
  u.offset = offset;
  u.len = len;
  u.prev_size = size;
  if (offset < size) {
    const uint64_t n = std::min(offset + len, size) - offset;
    u.old_bytes.resize(n);
    DLOG_RETURN_IF_ERROR(base->PReadExact(offset, n, reinterpret_cast<uint8_t*>(u.old_bytes.data())));
  }
  DLOG_RETURN_IF_ERROR(base->PWritev(offset, iov, iovcnt));
  unsynced_.push_back(std::move(u));
  writes_.fetch_add(1);
  return Status::OK();
}

Status FaultInjectionEnv::FileSync(File* base, bool data_only) {
  const int64_t delay = sync_delay_us_.load();
  if (delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay));
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kSync, base->path()));
  DLOG_RETURN_IF_ERROR(data_only ? base->DataSync() : base->Sync());
  const std::string& path = base->path();
  std::erase_if(unsynced_, [&](const Unsynced& u) { return u.path == path; });
  syncs_.fetch_add(1);
  return Status::OK();
}

Status FaultInjectionEnv::FileTruncate(File* base, uint64_t size) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kOther, base->path()));
  DLOG_ASSIGN_OR_RETURN(uint64_t prev, base->Size());
  Unsynced u;
  u.path = base->path();
  u.offset = std::min(size, prev);
  u.len = 0;
  u.prev_size = prev;
  if (size < prev) {
    u.old_bytes.resize(prev - size);
    DLOG_RETURN_IF_ERROR(base->PReadExact(size, prev - size, reinterpret_cast<uint8_t*>(u.old_bytes.data())));
  }
  DLOG_RETURN_IF_ERROR(base->Truncate(size));
  unsynced_.push_back(std::move(u));
  return Status::OK();
}

Status FaultInjectionEnv::FileFallocate(File* base, uint64_t offset, uint64_t len) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kOther, base->path()));
  DLOG_ASSIGN_OR_RETURN(uint64_t prev, base->Size());
  DLOG_RETURN_IF_ERROR(base->Fallocate(offset, len));
  if (offset + len > prev) {  // the size change is unsynced: remember it like an append of zeros
    Unsynced u;
    u.path = base->path();
    u.offset = prev;
    u.len = offset + len - prev;
    u.prev_size = prev;
    unsynced_.push_back(std::move(u));
  }
  return Status::OK();
}

Result<std::unique_ptr<File>> FaultInjectionEnv::OpenFile(const std::string& path, OpenMode mode) {
  if (mode == OpenMode::kRead || mode == OpenMode::kReadWrite) {
    DLOG_ASSIGN_OR_RETURN(auto f, base_->OpenFile(path, mode));
    return std::unique_ptr<File>(new FaultFile(this, std::move(f)));
  }
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kOther, path));
  const bool existed = base_->Exists(path);
  uint64_t prev = 0;
  std::string old;
  if (existed && mode == OpenMode::kCreateOrTrunc) {
    auto sz = base_->FileSize(path);
    if (sz.ok() && *sz > 0) {
      prev = *sz;
      DLOG_ASSIGN_OR_RETURN(auto rf, base_->OpenFile(path, OpenMode::kRead));
      old.resize(prev);
      DLOG_RETURN_IF_ERROR(rf->PReadExact(0, prev, reinterpret_cast<uint8_t*>(old.data())));
    }
  }
  DLOG_ASSIGN_OR_RETURN(auto f, base_->OpenFile(path, mode));
  if (!existed) {
    new_files_[NormDir(DirOf(path))].insert(path);
  } else if (prev > 0) {
    Unsynced u;
    u.path = path;
    u.offset = 0;
    u.len = 0;
    u.prev_size = prev;
    u.old_bytes = std::move(old);
    unsynced_.push_back(std::move(u));
  }
  return std::unique_ptr<File>(new FaultFile(this, std::move(f)));
}

void FaultInjectionEnv::ForgetPath(const std::string& path) {
  std::erase_if(unsynced_, [&](const Unsynced& u) { return u.path == path; });
  auto it = new_files_.find(NormDir(DirOf(path)));
  if (it != new_files_.end()) it->second.erase(path);
}

Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kOther, path));
  DLOG_RETURN_IF_ERROR(base_->RemoveFile(path));
  ForgetPath(path);
  return Status::OK();
}

Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kOther, from));
  DLOG_RETURN_IF_ERROR(base_->RenameFile(from, to));
  for (auto& u : unsynced_) {
    if (u.path == from) u.path = to;
  }
  const std::string from_dir = NormDir(DirOf(from));
  auto it = new_files_.find(from_dir);
  if (it != new_files_.end() && it->second.erase(from) > 0) {
    // A file never made durable: its new name is not durable either.
    new_files_[NormDir(DirOf(to))].insert(to);
  } else {
    renames_[NormDir(DirOf(to))].push_back(Rename{from, to});
  }
  return Status::OK();
}

Status FaultInjectionEnv::CreateDir(const std::string& dir) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kOther, dir));
  return base_->CreateDir(dir);
}

Status FaultInjectionEnv::SyncDir(const std::string& dir) {
  MutexLock l(&mu_);
  DLOG_RETURN_IF_ERROR(CheckFault(OpKind::kSync, dir));
  DLOG_RETURN_IF_ERROR(base_->SyncDir(dir));
  new_files_.erase(NormDir(dir));
  renames_.erase(NormDir(dir));
  return Status::OK();
}

Status FaultInjectionEnv::Revert(const Unsynced& u, uint64_t keep_prefix) {
  auto f = base_->OpenFile(u.path, OpenMode::kReadWrite);
  if (!f.ok()) {
    if (f.status().Is(CommonErrc::kNotFound)) return Status::OK();  // removed later
    return f.status();
  }
  const uint64_t size = std::max(u.prev_size, u.offset + std::min(keep_prefix, u.len));
  DLOG_RETURN_IF_ERROR((*f)->Truncate(size));
  if (keep_prefix < u.old_bytes.size()) {
    DLOG_RETURN_IF_ERROR(
        (*f)->PWrite(u.offset + keep_prefix, u.old_bytes.data() + keep_prefix, u.old_bytes.size() - keep_prefix));
  }
  return (*f)->DataSync();
}

Status FaultInjectionEnv::SimulateCrash(CrashMode mode) {
  MutexLock l(&mu_);
  Status first;
  auto note = [&](const Status& st) {
    if (!st.ok() && first.ok()) first = st;
  };
  size_t keep = 0;       // unsynced writes [0, keep) survive
  uint64_t partial = 0;  // bytes of write `keep` that survive
  if (mode == CrashMode::kTorn && !unsynced_.empty()) {
    keep = static_cast<size_t>(rng_() % (unsynced_.size() + 1));
    if (keep < unsynced_.size() && unsynced_[keep].len > 0) partial = rng_() % unsynced_[keep].len;
  }
  DLOG_INFO << "fault env: simulated crash (" << (mode == CrashMode::kTorn ? "torn" : "drop unsynced")
            << "): " << unsynced_.size() << " unsynced writes, " << keep << " kept, write " << keep << " keeps "
            << partial << " bytes";
  for (size_t i = unsynced_.size(); i-- > keep;) {
    note(Revert(unsynced_[i], i == keep ? partial : 0));
  }
  unsynced_.clear();
  for (auto& [dir, list] : renames_) {
    for (auto it = list.rbegin(); it != list.rend(); ++it) note(base_->RenameFile(it->to, it->from));
  }
  renames_.clear();
  for (auto& [dir, files] : new_files_) {
    for (const auto& path : files) {
      Status st = base_->RemoveFile(path);
      if (!st.Is(CommonErrc::kNotFound)) note(st);
    }
  }
  new_files_.clear();
  fail_write_in_ = 0;
  fail_sync_in_ = 0;
  crash_armed_ = false;
  crashed_ = false;
  sync_delay_us_ = 0;
  return first;
}

}  // namespace dlog::node
