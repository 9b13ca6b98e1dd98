// NodeClient on top of net::RpcClient.
//
// Hot path (a call on the loop thread): the request header is filled into a
// scratch NodeRequest kept per operation (its oneof is set once and never
// cleared, so filling it allocates nothing), serialized straight into the
// connection's reused output buffer, and the callback is moved into a ring of
// pending slots shared with the RpcClient. Replies are parsed into a
// NodeResponse on an arena with a fixed initial block that is reset after
// each reply. Calls from other threads are posted to the loop (one task
// allocation each).
#include "logstore/node/client.h"

#include <google/protobuf/arena.h>

#include <atomic>
#include <optional>
#include <utility>
#include <variant>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "net/errors.h"
#include "net/rpc_client.h"
#include "protocol/frame.h"
#include "protocol/node_errors.h"

namespace dlog::node {

namespace {

enum class Op : uint8_t { kNone, kAdd, kRead, kReadLac, kWriteLac, kDelete, kInfo };

const char* OpName(Op op) {
  switch (op) {
    case Op::kNone:
      return "none";
    case Op::kAdd:
      return "AddEntry";
    case Op::kRead:
      return "ReadEntry";
    case Op::kReadLac:
      return "ReadLac";
    case Op::kWriteLac:
      return "WriteLac";
    case Op::kDelete:
      return "DeleteSegments";
    case Op::kInfo:
      return "NodeInfo";
  }
  return "?";
}

// Room left for the request header when checking a payload against the frame limit.
constexpr size_t kHeaderAllowance = 128;

template <typename T>
class Waiter {
 public:
  void Set(T v) {
    MutexLock l(&mu_);
    value_.emplace(std::move(v));
    cv_.SignalAll();
  }
  T Wait() {
    MutexLock l(&mu_);
    while (!value_.has_value()) cv_.Wait(&mu_);
    return std::move(*value_);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::optional<T> value_ DLOG_GUARDED_BY(mu_);
};

}  // namespace

class NodeClient::Impl final : public net::RpcClient::Handler {
 public:
  using StatusCb = std::function<void(const Status&)>;

  Impl(net::EventLoop* loop, NodeClientOptions options)
      : loop_(loop),
        opts_(std::move(options)),
        rpc_(loop, MakeRpcOptions(opts_), this),
        pending_(rpc_.capacity()),
        arena_(MakeArenaOptions(arena_block_, sizeof(arena_block_))) {
    // The oneof of each scratch request is set once, here.
    add_req_.mutable_add_entry();
    read_req_.mutable_read_entry();
    read_lac_req_.mutable_read_lac();
    write_lac_req_.mutable_write_lac();
    delete_req_.mutable_delete_segments();
    info_req_.mutable_node_info();
  }

  ~Impl() override = default;

  net::EventLoop* loop() const { return loop_; }
  const NodeClientOptions& options() const { return opts_; }
  size_t in_flight() const { return rpc_.in_flight(); }
  uint64_t dropped_replies() const { return rpc_.dropped_replies(); }

  // Runs `task` on the loop thread; if the loop is gone for good, runs it here
  // and every request in it fails with kClosed.
  void Post(std::function<void()> task) {
    if (!loop_->TryPost(task)) {
      loop_gone_.store(true);
      task();
    }
  }

  // ---- requests (loop thread) ----

  void AddEntry(SegmentId segment, EntryId entry, EntryId lac, const Slice& payload, bool recovery, StatusCb cb) {
    if (payload.size() + protocol::kMinFrameLength + kHeaderAllowance > opts_.max_frame_bytes) {
      cb(Status::Error(NodeErrc::kBadRequest, "payload of " + std::to_string(payload.size()) +
                                                  " bytes does not fit in a frame of at most " +
                                                  std::to_string(opts_.max_frame_bytes) + " bytes"));
      return;
    }
    uint64_t id;
    size_t slot;
    if (Status st = Reserve(&id, &slot); !st.ok()) {
      cb(st);
      return;
    }
    add_req_.set_request_id(id);
    proto::AddEntryRequest* a = add_req_.mutable_add_entry();
    a->set_segment_id(segment.value());
    a->set_entry_id(entry.value());
    a->set_lac(lac.value());
    a->set_payload_crc32c(crc32c::Value(payload.data(), payload.size()));
    a->set_recovery(recovery);
    pending_[slot].op = Op::kAdd;
    pending_[slot].cb.emplace<kStatusCb>(std::move(cb));
    rpc_.Send(id, slot, add_req_, payload.view(), opts_.request_timeout_ms);
  }

  void ReadEntry(SegmentId segment, EntryId entry, bool fence, uint32_t long_poll_timeout_ms, ReadCallback cb) {
    uint64_t id;
    size_t slot;
    if (Status st = Reserve(&id, &slot); !st.ok()) {
      cb(st, EntryReply{});
      return;
    }
    read_req_.set_request_id(id);
    proto::ReadEntryRequest* r = read_req_.mutable_read_entry();
    r->set_segment_id(segment.value());
    r->set_entry_id(entry.value());
    r->set_fence(fence);
    r->set_long_poll_timeout_ms(long_poll_timeout_ms);
    pending_[slot].op = Op::kRead;
    pending_[slot].cb.emplace<kReadCb>(std::move(cb));
    rpc_.Send(id, slot, read_req_, {}, opts_.request_timeout_ms + static_cast<int64_t>(long_poll_timeout_ms));
  }

  void ReadLac(SegmentId segment, LacCallback cb) {
    uint64_t id;
    size_t slot;
    if (Status st = Reserve(&id, &slot); !st.ok()) {
      cb(st, LacReply{});
      return;
    }
    read_lac_req_.set_request_id(id);
    read_lac_req_.mutable_read_lac()->set_segment_id(segment.value());
    pending_[slot].op = Op::kReadLac;
    pending_[slot].cb.emplace<kLacCb>(std::move(cb));
    rpc_.Send(id, slot, read_lac_req_, {}, opts_.request_timeout_ms);
  }

  void WriteLac(SegmentId segment, EntryId lac, LacCallback cb) {
    uint64_t id;
    size_t slot;
    if (Status st = Reserve(&id, &slot); !st.ok()) {
      cb(st, LacReply{});
      return;
    }
    write_lac_req_.set_request_id(id);
    proto::WriteLacRequest* w = write_lac_req_.mutable_write_lac();
    w->set_segment_id(segment.value());
    w->set_lac(lac.value());
    pending_[slot].op = Op::kWriteLac;
    pending_[slot].cb.emplace<kLacCb>(std::move(cb));
    rpc_.Send(id, slot, write_lac_req_, {}, opts_.request_timeout_ms);
  }

  void DeleteSegments(const std::vector<SegmentId>& segments, DoneCallback cb) {
    uint64_t id;
    size_t slot;
    if (Status st = Reserve(&id, &slot); !st.ok()) {
      cb(st);
      return;
    }
    delete_req_.set_request_id(id);
    proto::DeleteSegmentsRequest* d = delete_req_.mutable_delete_segments();
    d->clear_segment_ids();  // keeps its capacity
    for (SegmentId s : segments) d->add_segment_ids(s.value());
    pending_[slot].op = Op::kDelete;
    pending_[slot].cb.emplace<kStatusCb>(std::move(cb));
    rpc_.Send(id, slot, delete_req_, {}, opts_.request_timeout_ms);
  }

  void NodeInfo(InfoCallback cb) {
    uint64_t id;
    size_t slot;
    if (Status st = Reserve(&id, &slot); !st.ok()) {
      cb(st, proto::NodeInfoResponse());
      return;
    }
    info_req_.set_request_id(id);
    pending_[slot].op = Op::kInfo;
    pending_[slot].cb.emplace<kInfoCb>(std::move(cb));
    rpc_.Send(id, slot, info_req_, {}, opts_.request_timeout_ms);
  }

  void CloseOnLoop() { rpc_.Shutdown(Status::Error(net::NetErrc::kClosed, "node client closed")); }

  // ---- net::RpcClient::Handler (loop thread) ----

  void OnReplyFrame(std::string_view header, Slice payload) override {
    auto* r = google::protobuf::Arena::CreateMessage<proto::NodeResponse>(&arena_);
    if (!r->ParseFromArray(header.data(), static_cast<int>(header.size()))) {
      arena_.Reset();
      DLOG_WARN << "node " << opts_.address.ToString() << " sent a reply that does not parse; reconnecting";
      rpc_.DropConnection(Status::Error(net::NetErrc::kProtocolError, "a reply header does not parse"));
      return;
    }
    if (r->request_id() == 0) {
      // A connection-level error; the node closes the connection next.
      DLOG_WARN << "node " << opts_.address.ToString() << " reports " << proto::NodeStatusCode_Name(r->code()) << ": "
                << r->error_text();
      arena_.Reset();
      return;
    }
    size_t slot;
    if (!rpc_.Claim(r->request_id(), &slot)) {
      arena_.Reset();  // late (timed out) or unknown: dropped and counted
      return;
    }
    Pending p = Take(slot);
    Complete(p, *r, std::move(payload));
    arena_.Reset();
  }

  void OnRequestFailed(uint64_t /*id*/, size_t slot, const Status& status) override {
    Pending p = Take(slot);
    switch (p.op) {
      case Op::kAdd:
      case Op::kDelete:
        std::get<kStatusCb>(p.cb)(status);
        break;
      case Op::kRead:
        std::get<kReadCb>(p.cb)(status, EntryReply{});
        break;
      case Op::kReadLac:
      case Op::kWriteLac:
        std::get<kLacCb>(p.cb)(status, LacReply{});
        break;
      case Op::kInfo:
        std::get<kInfoCb>(p.cb)(status, proto::NodeInfoResponse());
        break;
      case Op::kNone:
        DLOG_CHECK(false) << "request in slot " << slot << " has no callback";
        break;
    }
  }

 private:
  static constexpr size_t kStatusCb = 1, kReadCb = 2, kLacCb = 3, kInfoCb = 4;
  struct Pending {
    Op op = Op::kNone;
    std::variant<std::monostate, StatusCb, ReadCallback, LacCallback, InfoCallback> cb;
  };

  static net::RpcClientOptions MakeRpcOptions(const NodeClientOptions& o) {
    net::RpcClientOptions r;
    r.address = o.address;
    r.window = o.window;
    r.connect_timeout_ms = o.connect_timeout_ms;
    r.max_frame_bytes = o.max_frame_bytes;
    return r;
  }

  static google::protobuf::ArenaOptions MakeArenaOptions(char* block, size_t size) {
    google::protobuf::ArenaOptions a;
    a.initial_block = block;
    a.initial_block_size = size;
    return a;
  }

  Status Reserve(uint64_t* id, size_t* slot) {
    if (loop_gone_.load()) return Status::Error(net::NetErrc::kClosed, "the client's event loop has stopped");
    return rpc_.Reserve(id, slot);
  }

  Pending Take(size_t slot) {
    Pending p = std::move(pending_[slot]);
    pending_[slot].op = Op::kNone;
    pending_[slot].cb.emplace<0>();
    return p;
  }

  Status Mismatch(const proto::NodeResponse& r, Op op) const {
    return Status::Error(net::NetErrc::kProtocolError, "node " + opts_.address.ToString() + " answered " + OpName(op) +
                                                           " request " + std::to_string(r.request_id()) +
                                                           " without its reply body");
  }

  void Complete(Pending& p, const proto::NodeResponse& r, Slice payload) {
    Status st = FromWire(r.code(), r.error_text());
    switch (p.op) {
      case Op::kAdd: {
        if (st.ok() && !r.has_add_entry()) st = Mismatch(r, p.op);
        std::get<kStatusCb>(p.cb)(st);
        break;
      }
      case Op::kRead: {
        EntryReply er;
        if (r.has_read_entry()) {
          const proto::ReadEntryResponse& re = r.read_entry();
          er.lac = EntryId(re.lac());
          er.last_entry = EntryId(re.last_entry_id());
          er.fenced = re.fenced();
          if (st.ok() && re.has_entry()) {
            const uint32_t crc = crc32c::Value(payload.data(), payload.size());
            if (crc != re.payload_crc32c()) {
              // Never hand bad bytes to the caller.
              st = Status::Error(NodeErrc::kIoError, "entry " + std::to_string(re.segment_id()) + ":" +
                                                         std::to_string(re.entry_id()) + " from node " +
                                                         opts_.address.ToString() + " failed its checksum (" +
                                                         std::to_string(payload.size()) + " bytes)");
            } else {
              er.has_entry = true;
              er.payload = std::move(payload);
            }
          }
        } else if (st.ok()) {
          st = Mismatch(r, p.op);
        }
        std::get<kReadCb>(p.cb)(st, std::move(er));
        break;
      }
      case Op::kReadLac: {
        LacReply lr;
        if (r.has_read_lac()) {
          lr.lac = EntryId(r.read_lac().lac());
          lr.last_entry = EntryId(r.read_lac().last_entry_id());
          lr.fenced = r.read_lac().fenced();
        } else if (st.ok()) {
          st = Mismatch(r, p.op);
        }
        std::get<kLacCb>(p.cb)(st, lr);
        break;
      }
      case Op::kWriteLac: {
        LacReply lr;
        if (r.has_write_lac()) {
          lr.lac = EntryId(r.write_lac().lac());
        } else if (st.ok()) {
          st = Mismatch(r, p.op);
        }
        std::get<kLacCb>(p.cb)(st, lr);
        break;
      }
      case Op::kDelete: {
        if (st.ok() && !r.has_delete_segments()) st = Mismatch(r, p.op);
        std::get<kStatusCb>(p.cb)(st);
        break;
      }
      case Op::kInfo: {
        if (st.ok() && !r.has_node_info()) st = Mismatch(r, p.op);
        proto::NodeInfoResponse info;
        if (r.has_node_info()) info = r.node_info();  // a heap copy: the arena is reset next
        std::get<kInfoCb>(p.cb)(st, std::move(info));
        break;
      }
      case Op::kNone:
        DLOG_CHECK(false) << "reply for a slot with no callback";
        break;
    }
  }

  net::EventLoop* const loop_;
  const NodeClientOptions opts_;
  std::atomic<bool> loop_gone_{false};
  net::RpcClient rpc_;
  std::vector<Pending> pending_;  // indexed like rpc_'s slots

  proto::NodeRequest add_req_, read_req_, read_lac_req_, write_lac_req_, delete_req_, info_req_;
  alignas(16) char arena_block_[4096];
  google::protobuf::Arena arena_;

 public:
  std::atomic<bool> close_started{false};
};

// ---- NodeClient ----

NodeClient::NodeClient(net::EventLoop* loop, NodeClientOptions options)
    : impl_(std::make_shared<Impl>(loop, std::move(options))) {}

NodeClient::~NodeClient() {
  Close();
  net::EventLoop* loop = impl_->loop();
  if (loop->InLoopThread()) {
    // We may be inside one of this client's own callbacks: let the Impl go in a later task.
    std::function<void()> release = [impl = std::move(impl_)] {};
    IgnoreError(loop->TryPost(release));
  }
}

void NodeClient::AddEntry(SegmentId segment, EntryId entry, EntryId lac, Slice payload, bool recovery, AddCallback cb) {
  if (impl_->loop()->InLoopThread()) {
    impl_->AddEntry(segment, entry, lac, payload, recovery, std::move(cb));
    return;
  }
  impl_->Post(
      [impl = impl_, segment, entry, lac, payload = std::move(payload), recovery, cb = std::move(cb)]() mutable {
        impl->AddEntry(segment, entry, lac, payload, recovery, std::move(cb));
      });
}

void NodeClient::ReadEntry(SegmentId segment, EntryId entry, bool fence, uint32_t long_poll_timeout_ms,
                           ReadCallback cb) {
  if (impl_->loop()->InLoopThread()) {
    impl_->ReadEntry(segment, entry, fence, long_poll_timeout_ms, std::move(cb));
    return;
  }
  impl_->Post([impl = impl_, segment, entry, fence, long_poll_timeout_ms, cb = std::move(cb)]() mutable {
    impl->ReadEntry(segment, entry, fence, long_poll_timeout_ms, std::move(cb));
  });
}

void NodeClient::ReadLac(SegmentId segment, LacCallback cb) {
  if (impl_->loop()->InLoopThread()) {
    impl_->ReadLac(segment, std::move(cb));
    return;
  }
  impl_->Post([impl = impl_, segment, cb = std::move(cb)]() mutable { impl->ReadLac(segment, std::move(cb)); });
}

void NodeClient::WriteLac(SegmentId segment, EntryId lac, LacCallback cb) {
  if (impl_->loop()->InLoopThread()) {
    impl_->WriteLac(segment, lac, std::move(cb));
    return;
  }
  impl_->Post(
      [impl = impl_, segment, lac, cb = std::move(cb)]() mutable { impl->WriteLac(segment, lac, std::move(cb)); });
}

void NodeClient::DeleteSegments(std::vector<SegmentId> segments, DoneCallback cb) {
  if (impl_->loop()->InLoopThread()) {
    impl_->DeleteSegments(segments, std::move(cb));
    return;
  }
  impl_->Post([impl = impl_, segments = std::move(segments), cb = std::move(cb)]() mutable {
    impl->DeleteSegments(segments, std::move(cb));
  });
}

void NodeClient::NodeInfo(InfoCallback cb) {
  if (impl_->loop()->InLoopThread()) {
    impl_->NodeInfo(std::move(cb));
    return;
  }
  impl_->Post([impl = impl_, cb = std::move(cb)]() mutable { impl->NodeInfo(std::move(cb)); });
}

namespace {
void CheckNotLoopThread(net::EventLoop* loop, const char* what) {
  DLOG_CHECK(!loop->InLoopThread()) << "NodeClient::" << what << " blocks and must not run on the loop thread";
}
}  // namespace

Status NodeClient::AddEntrySync(SegmentId segment, EntryId entry, EntryId lac, Slice payload, bool recovery) {
  CheckNotLoopThread(impl_->loop(), "AddEntrySync");
  auto w = std::make_shared<Waiter<Status>>();
  AddEntry(segment, entry, lac, std::move(payload), recovery, [w](const Status& st) { w->Set(st); });
  return w->Wait();
}

Result<EntryReply> NodeClient::ReadEntrySync(SegmentId segment, EntryId entry, bool fence,
                                             uint32_t long_poll_timeout_ms) {
  CheckNotLoopThread(impl_->loop(), "ReadEntrySync");
  auto w = std::make_shared<Waiter<Result<EntryReply>>>();
  ReadEntry(segment, entry, fence, long_poll_timeout_ms, [w](const Status& st, EntryReply&& r) {
    if (st.ok()) {
      w->Set(Result<EntryReply>(std::move(r)));
    } else {
      w->Set(Result<EntryReply>(st));
    }
  });
  return w->Wait();
}

Result<LacReply> NodeClient::ReadLacSync(SegmentId segment) {
  CheckNotLoopThread(impl_->loop(), "ReadLacSync");
  auto w = std::make_shared<Waiter<Result<LacReply>>>();
  ReadLac(segment, [w](const Status& st, LacReply r) {
    if (st.ok()) {
      w->Set(Result<LacReply>(r));
    } else {
      w->Set(Result<LacReply>(st));
    }
  });
  return w->Wait();
}

Result<LacReply> NodeClient::WriteLacSync(SegmentId segment, EntryId lac) {
  CheckNotLoopThread(impl_->loop(), "WriteLacSync");
  auto w = std::make_shared<Waiter<Result<LacReply>>>();
  WriteLac(segment, lac, [w](const Status& st, LacReply r) {
    if (st.ok()) {
      w->Set(Result<LacReply>(r));
    } else {
      w->Set(Result<LacReply>(st));
    }
  });
  return w->Wait();
}

Status NodeClient::DeleteSegmentsSync(std::vector<SegmentId> segments) {
  CheckNotLoopThread(impl_->loop(), "DeleteSegmentsSync");
  auto w = std::make_shared<Waiter<Status>>();
  DeleteSegments(std::move(segments), [w](const Status& st) { w->Set(st); });
  return w->Wait();
}

Result<proto::NodeInfoResponse> NodeClient::NodeInfoSync() {
  CheckNotLoopThread(impl_->loop(), "NodeInfoSync");
  auto w = std::make_shared<Waiter<Result<proto::NodeInfoResponse>>>();
  NodeInfo([w](const Status& st, proto::NodeInfoResponse info) {
    if (st.ok()) {
      w->Set(Result<proto::NodeInfoResponse>(std::move(info)));
    } else {
      w->Set(Result<proto::NodeInfoResponse>(st));
    }
  });
  return w->Wait();
}

void NodeClient::Close() {
  if (!impl_ || impl_->close_started.exchange(true)) return;
  std::shared_ptr<Impl> impl = impl_;
  impl->loop()->RunSync([impl] { impl->CloseOnLoop(); });
}

size_t NodeClient::in_flight() const { return impl_->in_flight(); }
const HostPort& NodeClient::address() const { return impl_->options().address; }
uint64_t NodeClient::dropped_replies() const { return impl_->dropped_replies(); }

}  // namespace dlog::node
