// Helpers for the storage node tests: temp dirs, synchronous wrappers over
// the callback API, payload generators.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "common/crc32c.h"
#include "logstore/node/store.h"
#include "logstore/node/store_impl.h"
#include "protocol/node_errors.h"

namespace dlog::node::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/dlog_node_test_XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path_ = p ? p : "/tmp/dlog_node_test_failed";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string data() const { return path_ + "/data"; }

 private:
  std::string path_;
};

inline StoreOptions SmallOptions(const std::string& dir, bool format, Env* env = nullptr) {
  StoreOptions o;
  o.data_dir = dir;
  o.node_id = "node-a";
  o.format = format;
  o.journal_file_bytes = 256 << 10;
  o.journal_max_batch_bytes = 64 << 10;
  o.journal_queue_max_bytes = 4 << 20;
  o.journal_queue_max_records = 4096;
  o.cache_bytes = 1 << 20;
  o.env = env;
  return o;
}

inline std::unique_ptr<Store> MustOpen(StoreOptions o) {
  auto r = Store::Open(std::move(o));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

inline StoreImpl* Impl(Store* s) { return static_cast<StoreImpl*>(s); }

// Deterministic payload of `n` bytes for (segment, entry, salt).
inline std::string PayloadFor(uint64_t seg, int64_t entry, size_t n, uint64_t salt = 0) {
  std::mt19937_64 rng(seg * 1000003 + static_cast<uint64_t>(entry) * 7919 + salt);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline Status AddSync(Store* s, uint64_t seg, int64_t entry, const std::string& payload, int64_t lac = -1,
                      bool recovery = false) {
  std::promise<Status> p;
  auto f = p.get_future();
  s->AddEntry(SegmentId(seg), EntryId(entry), EntryId(lac), crc32c::Value(payload.data(), payload.size()),
              Slice::CopyOf(payload), recovery, [&p](const Status& st) { p.set_value(st); });
  return f.get();
}

inline ReadResult ReadSync(Store* s, uint64_t seg, int64_t entry, bool fence = false) {
  std::promise<ReadResult> p;
  auto f = p.get_future();
  s->ReadEntry(SegmentId(seg), EntryId(entry), fence, [&p](ReadResult&& r) { p.set_value(std::move(r)); });
  return f.get();
}

inline Status DeleteSync(Store* s, std::vector<SegmentId> segs, uint32_t* deleted = nullptr) {
  std::promise<std::pair<Status, uint32_t>> p;
  auto f = p.get_future();
  s->DeleteSegments(std::move(segs), [&p](const Status& st, uint32_t n) { p.set_value({st, n}); });
  auto r = f.get();
  if (deleted) *deleted = r.second;
  return r.first;
}

// Counts completions of async adds.
class Waiter {
 public:
  void Add(int n = 1) {
    std::lock_guard<std::mutex> l(mu_);
    pending_ += n;
  }
  void Done() {
    std::lock_guard<std::mutex> l(mu_);
    if (--pending_ == 0) cv_.notify_all();
  }
  bool Wait(int seconds = 30) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(seconds), [&] { return pending_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
};

inline size_t CountJournalFiles(const std::string& data_dir, uint64_t* bytes = nullptr) {
  size_t n = 0;
  if (bytes) *bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(data_dir + "/journal")) {
    if (e.path().extension() == ".jnl") {
      ++n;
      if (bytes) *bytes += e.file_size();
    }
  }
  return n;
}

}  // namespace dlog::node::testing
