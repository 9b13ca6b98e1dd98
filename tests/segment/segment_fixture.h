// A small cluster for segment tests: N real `dlogd logstore` children on
// loopback, a metadata store (embedded in-process, or a real ZooKeeper), the
// nodes registered under Layout::NodesDir(), and a SegmentClient.
#pragma once

#include <zookeeper/zookeeper.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "common/status.h"
#include "logstore/segment/errors.h"
#include "logstore/segment/recovery.h"
#include "logstore/segment/segment_client.h"
#include "logstore/segment/segment_reader.h"
#include "logstore/segment/segment_writer.h"
#include "metadata/embedded_store.h"
#include "metadata/records.h"
#include "metadata/zk_store.h"
#include "net/event_loop.h"
#include "tests/metadata/zk_fixture.h"
#include "tests/support/node_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {

using segment::SegmentClient;
using segment::SegmentErrc;
using segment::SegmentOptions;
using segment::SegmentReader;
using segment::SegmentRecovery;
using segment::SegmentWriter;
using segment::WriterConfig;

// One metadata store on its own loop.
struct StoreHandle {
  std::unique_ptr<net::EventLoop> loop;
  std::unique_ptr<metadata::MetadataStore> store;
  metadata::ZkStore* zk = nullptr;  // set for ZooKeeper

  // Fails what is pending (callbacks run now, on the still running loop). Idempotent.
  void Close() {
    if (store && !closed) store->CloseSync();
    closed = true;
  }
  bool closed = false;

  ~StoreHandle() {
    Close();
    store.reset();
    if (loop) loop->Stop();
  }
};

class SegmentCluster {
 public:
  // `zk`: a running ZooKeeper server, or null for the embedded store.
  SegmentCluster(int nodes, ZkServer* zk = nullptr) : zk_(zk), layout_(*metadata::Layout::Make("seg")) {
    for (int i = 0; i < nodes; ++i) {
      std::filesystem::create_directories(dir_.Sub("node" + std::to_string(i)));
      nodes_.push_back(std::make_unique<LogstoreNode>(dir_.Sub("node" + std::to_string(i)), FreePort(),
                                                      std::vector<std::string>{"--journal-file-size", "16MiB"}));
    }
  }

  ~SegmentCluster() {
    // Stores first: a callback still pending in a store (e.g. a reader's open
    // that its owner abandoned) runs while its SegmentClient still exists.
    for (auto& h : stores_) h->Close();
    for (auto& c : clients_) c->Close();
    clients_.clear();
    stores_.clear();
    for (auto& n : nodes_) n->Kill9();
  }

  // Starts every node not yet started, opens the main store, registers the nodes.
  bool Start() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      // FreePort is racy (bind to 0, close): on a failed start, try another port.
      bool started = false;
      for (int attempt = 0; attempt < 3 && !started; ++attempt) {
        if (attempt > 0) {
          nodes_[i] =
              std::make_unique<LogstoreNode>(dir_.Sub("node" + std::to_string(i) + "-" + std::to_string(attempt)),
                                             FreePort(), std::vector<std::string>{"--journal-file-size", "16MiB"});
          std::filesystem::create_directories(dir_.Sub("node" + std::to_string(i) + "-" + std::to_string(attempt)));
        }
        started = nodes_[i]->Start(/*format=*/true);
        if (!started) error_ = "node " + nodes_[i]->address() + " did not start: " + nodes_[i]->Stderr();
      }
      if (!started) return false;
    }
    main_ = OpenStore();
    if (main_ == nullptr) return false;
    for (auto& d : layout_.Directories()) {
      if (Status st = main_->store->EnsurePathSync(d); !st.ok()) {
        error_ = "ensure " + d + ": " + st.ToString();
        return false;
      }
    }
    registrar_ = zk_ ? OpenStore() : main_;
    if (registrar_ == nullptr) return false;
    for (auto& n : nodes_) {
      if (!Register(n->address())) {
        error_ = "register " + n->address() + " failed";
        return false;
      }
    }
    return true;
  }

  bool Register(const std::string& address) {
    proto::NodeRegistration reg;
    reg.set_address(address);
    auto r =
        registrar_->store->CreateSync(layout_.Node(address), metadata::Encode(reg), metadata::CreateMode::kEphemeral);
    return r.ok();
  }
  bool Unregister(const std::string& address) {
    return registrar_->store->DeleteSync(layout_.Node(address), metadata::kAnyVersion).ok();
  }

  // A new store (its own loop and session).
  StoreHandle* OpenStore() {
    auto h = std::make_unique<StoreHandle>();
    h->loop = std::make_unique<net::EventLoop>("seg-meta");
    h->loop->Start();
    if (zk_) {
      metadata::ZkStoreOptions o;
      o.connect = zk_->connect();
      o.session_timeout = std::chrono::milliseconds(4000);
      auto r = metadata::ZkStore::Open(o, h->loop.get());
      if (!r.ok()) {
        error_ = r.status().ToString();
        return nullptr;
      }
      h->zk = r->get();
      h->store = std::move(*r);
    } else {
      if (!stores_.empty()) return stores_.front().get();  // one embedded store per process dir
      metadata::EmbeddedStoreOptions o;
      o.dir = dir_.Sub("meta");
      o.sync = false;
      auto r = metadata::EmbeddedStore::Open(o, h->loop.get());
      if (!r.ok()) {
        error_ = r.status().ToString();
        return nullptr;
      }
      h->store = std::move(*r);
    }
    stores_.push_back(std::move(h));
    return stores_.back().get();
  }

  // A SegmentClient on `store` (the main one by default).
  SegmentClient* NewClient(SegmentOptions options = {}, StoreHandle* store = nullptr) {
    if (store == nullptr) store = main_;
    clients_.push_back(std::make_unique<SegmentClient>(store->store.get(), layout_, options));
    return clients_.back().get();
  }

  LogstoreNode& node(size_t i) { return *nodes_[i]; }
  LogstoreNode* NodeByAddress(const std::string& a) {
    for (auto& n : nodes_) {
      if (n->address() == a) return n.get();
    }
    return nullptr;
  }
  size_t size() const { return nodes_.size(); }
  const metadata::Layout& layout() const { return layout_; }
  StoreHandle* main() { return main_; }
  const std::string& error() const { return error_; }
  const TempDir& dir() const { return dir_; }

 private:
  ZkServer* zk_;
  TempDir dir_;
  metadata::Layout layout_;
  std::vector<std::unique_ptr<LogstoreNode>> nodes_;
  std::vector<std::unique_ptr<StoreHandle>> stores_;
  std::vector<std::unique_ptr<SegmentClient>> clients_;
  StoreHandle* main_ = nullptr;
  StoreHandle* registrar_ = nullptr;
  std::string error_;
};

// Number of entries for the bulk tests: DLOG_SEGMENT_TEST_ENTRIES or `def`.
inline int64_t TestEntries(int64_t def) {
  const char* e = std::getenv("DLOG_SEGMENT_TEST_ENTRIES");
  return e ? std::atoll(e) : def;
}

// Outcome of a pipelined write: entries acknowledged and the statuses of the failed ones.
struct WriteOutcome {
  int64_t acked = 0;       // count of OK callbacks
  int64_t max_acked = -1;  // highest acknowledged entry id
  int64_t fenced = 0;      // kFenced callbacks (outcome unknown)
  int64_t other_errors = 0;
  std::string first_error;
};

// Adds entries with payload PayloadFor(segment, k) for k = 0.. until `n` adds
// were issued or `stop()` says so (checked between adds), keeping at most
// `window` in flight; waits for every callback. Entry k is the k-th add.
inline WriteOutcome WriteEntries(SegmentWriter* w, int64_t first, int64_t n, int window,
                                 const std::function<bool(const WriteOutcome&)>& stop = nullptr,
                                 const std::function<void(int64_t)>& on_ack = nullptr) {
  std::counting_semaphore<1 << 20> permits(window);
  Mutex mu;
  WriteOutcome out;
  int64_t issued = 0;
  for (int64_t k = first; k < first + n; ++k) {
    permits.acquire();
    {
      MutexLock l(&mu);
      if (stop && stop(out)) {
        permits.release();
        break;
      }
      if (out.fenced > 0) {
        permits.release();
        break;
      }
    }
    ++issued;
    w->Add(Slice::CopyOf(PayloadFor(w->id(), EntryId(k))), [&, k](Result<EntryId> r) {
      {
        MutexLock l(&mu);
        if (r.ok()) {
          if (r->value() != k) {
            ++out.other_errors;
            out.first_error = "entry id mismatch";
          }
          ++out.acked;
          out.max_acked = std::max(out.max_acked, r->value());
        } else if (r.status().Is(SegmentErrc::kFenced)) {
          ++out.fenced;
        } else {
          ++out.other_errors;
          if (out.first_error.empty()) out.first_error = r.status().ToString();
        }
      }
      if (r.ok() && on_ack) on_ack(r->value());
      permits.release();
    });
  }
  for (int i = 0; i < window; ++i) permits.acquire();
  MutexLock l(&mu);
  return out;
}

// Reads entries [0, last] with a pipeline; checks payloads; returns the first problem or "".
inline std::string ReadAll(SegmentReader* r, SegmentId seg, int64_t last, int window = 256,
                           const std::function<std::string(int64_t, const segment::ReadResult&)>& check = nullptr) {
  std::counting_semaphore<1 << 20> permits(window);
  Mutex mu;
  std::string problem;
  for (int64_t e = 0; e <= last; ++e) {
    permits.acquire();
    r->Read(EntryId(e), [&, e](Result<segment::ReadResult> res) {
      std::string p;
      if (!res.ok()) {
        p = "entry " + std::to_string(e) + ": " + res.status().ToString();
      } else if (res->payload.view() != PayloadFor(seg, EntryId(e))) {
        p = "entry " + std::to_string(e) + ": wrong payload from " + res->node;
      } else if (check) {
        p = check(e, *res);
      }
      if (!p.empty()) {
        MutexLock l(&mu);
        if (problem.empty()) problem = p;
      }
      permits.release();
    });
  }
  for (int i = 0; i < window; ++i) permits.acquire();
  MutexLock l(&mu);
  return problem;
}

// Expires a ZooKeeper session from a second handle with the same id and password.
inline bool ExpireZkSession(const std::string& connect, int64_t id, const std::string& passwd) {
  clientid_t cid{};
  cid.client_id = id;
  std::memcpy(cid.passwd, passwd.data(), std::min(passwd.size(), sizeof(cid.passwd)));
  zhandle_t* zh = zookeeper_init(connect.c_str(), nullptr, 2000, &cid, nullptr, 0);
  if (zh == nullptr) return false;
  bool connected = WaitFor([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; }, std::chrono::milliseconds(5000));
  zookeeper_close(zh);
  return connected;
}

}  // namespace dlog::test
