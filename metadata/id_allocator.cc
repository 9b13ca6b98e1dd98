#include "metadata/id_allocator.h"

#include <atomic>
#include <future>
#include <memory>
#include <random>

#include "common/check.h"
#include "common/clock.h"
#include "metadata/records.h"
#include "net/event_loop.h"

namespace dlog::metadata {

namespace {

constexpr int kMaxCasAttempts = 1000;

std::string NewToken(MetadataStore* store) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(MonoNanos()));
  return store->SessionGuid() + ":" + std::to_string(rng()) + ":" + std::to_string(counter.fetch_add(1));
}

struct Allocation : std::enable_shared_from_this<Allocation> {
  MetadataStore* store;
  std::string path;
  Callback<uint64_t> cb;
  int attempts = 0;

  void Step() {
    if (++attempts > kMaxCasAttempts) {
      return cb(Status::Error(MetaErrc::kBadVersion, "id counter " + path + ": too much contention"));
    }
    auto self = shared_from_this();
    store->Get(path, [self](Result<NodeData> r) { self->OnRead(std::move(r)); });
  }

  void OnRead(Result<NodeData> r) {
    auto self = shared_from_this();
    if (!r.ok() && r.status().Is(MetaErrc::kNoNode)) {
      proto::IdCounter c;
      c.set_next_id(2);
      c.set_last_writer(NewToken(store));
      store->Create(path, Encode(c), CreateMode::kPersistent, [self](Result<std::string> cr) {
        if (cr.ok()) return self->cb(uint64_t{1});
        if (cr.status().Is(MetaErrc::kNodeExists)) return self->Step();
        self->cb(cr.status());
      });
      return;
    }
    if (!r.ok()) return cb(r.status());
    auto counter = Decode<proto::IdCounter>(path, r->data);
    if (!counter.ok()) return cb(counter.status());
    uint64_t id = counter->next_id();
    if (id == 0 || id == UINT64_MAX) {
      return cb(Status::Error(MetaErrc::kCorruptRecord, "id counter " + path + ": next id " + std::to_string(id)));
    }
    proto::IdCounter next;
    next.set_next_id(id + 1);
    next.set_last_writer(NewToken(store));
    store->Set(path, Encode(next), r->stat.version, [self, id](Result<Stat> sr) {
      if (sr.ok()) return self->cb(id);
      if (sr.status().Is(MetaErrc::kBadVersion)) return self->Step();
      self->cb(sr.status());
    });
  }
};

}  // namespace

void AllocateId(MetadataStore* store, std::string path, Callback<uint64_t> cb) {
  auto a = std::make_shared<Allocation>();
  a->store = store;
  a->path = std::move(path);
  a->cb = std::move(cb);
  a->Step();
}

Result<uint64_t> AllocateIdSync(MetadataStore* store, const std::string& path) {
  DLOG_CHECK(!store->loop()->InLoopThread()) << "AllocateIdSync on the store's loop";
  auto p = std::make_shared<std::promise<Result<uint64_t>>>();
  auto f = p->get_future();
  AllocateId(store, path, [p](Result<uint64_t> r) { p->set_value(std::move(r)); });
  return f.get();
}

}  // namespace dlog::metadata
