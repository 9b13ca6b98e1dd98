#include "logstore/node/service.h"

#include <algorithm>

#include "common/clock.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "protocol/node_errors.h"

namespace dlog::node {
namespace {

constexpr uint64_t kPollTickMs = 5;

}  // namespace

NodeService::NodeService(net::EventLoop* loop, Store* store, NodeServiceOptions options)
    : loop_(loop), store_(store), options_(options), probe_(store->probe()) {}

NodeService::~NodeService() { DLOG_CHECK(async_ == nullptr) << "NodeService destroyed without Stop()"; }

void NodeService::Start() {
  loop_->RunSync([this] {
    async_ = new uv_async_t;
    uv_async_init(loop_->uv(), async_, &NodeService::OnAsync);
    async_->data = this;
    poll_timer_ = new uv_timer_t;
    uv_timer_init(loop_->uv(), poll_timer_);
    poll_timer_->data = this;
    uv_timer_start(poll_timer_, &NodeService::OnPollTimer, kPollTickMs, kPollTickMs);
  });
  store_->SetLacListener([this](SegmentId segment, EntryId lac) {
    if (!has_long_polls_.load(std::memory_order_acquire)) return;
    {
      MutexLock l(&mu_);
      if (stopped_) return;
      lac_events_.push_back({segment, lac});
    }
    uv_async_send(async_);
  });
}

void NodeService::Stop() {
  store_->SetLacListener(nullptr);
  loop_->RunSync([this] {
    ExpireLongPolls(/*all=*/true);
    DrainCompletions();
    {
      MutexLock l(&mu_);
      stopped_ = true;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(poll_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    async_ = nullptr;
    poll_timer_ = nullptr;
  });
}

NodeService::Pending* NodeService::Acquire(const net::ConnectionPtr& conn, uint64_t request_id, Kind kind) {
  Pending* p;
  if (free_.empty()) {
    pool_.push_back(std::make_unique<Pending>());
    p = pool_.back().get();
  } else {
    p = free_.back();
    free_.pop_back();
  }
  p->conn = conn;
  p->request_id = request_id;
  p->kind = kind;
  p->start_ns = MonoNanos();
  p->status = Status::OK();
  p->deleted = 0;
  p->poll_deadline_ns = 0;
  return p;
}

void NodeService::Release(Pending* p) {
  p->conn.reset();
  p->read = ReadResult();
  p->status = Status::OK();
  free_.push_back(p);
}

void NodeService::Complete(Pending* p) {
  bool wake;
  {
    MutexLock l(&mu_);
    DLOG_CHECK(!stopped_) << "store completed a request after NodeService::Stop";
    wake = completed_.empty();
    completed_.push_back(p);
  }
  if (wake) uv_async_send(async_);
}

void NodeService::OnAsync(uv_async_t* h) { static_cast<NodeService*>(h->data)->DrainCompletions(); }

void NodeService::DrainCompletions() {
  {
    MutexLock l(&mu_);
    drained_.swap(completed_);
    drained_lac_.swap(lac_events_);
  }
  for (Pending* p : drained_) SendPending(p);
  drained_.clear();
  for (const LacEvent& e : drained_lac_) WakeLongPolls(e.segment, e.lac);
  drained_lac_.clear();
}

void NodeService::OnOpen(const net::ConnectionPtr&) {
  probe_->connections_total.fetch_add(1, std::memory_order_relaxed);
  probe_->connections_open.fetch_add(1, std::memory_order_relaxed);
}

void NodeService::OnClose(const net::ConnectionPtr&) {
  probe_->connections_open.fetch_sub(1, std::memory_order_relaxed);
}

void NodeService::OnProtocolError(const net::ConnectionPtr& conn, const Status& error) {
  probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
  DLOG_WARN << "closing connection from " << conn->peer() << ": " << error.ToString();
  ReplyError(conn, 0, Status::Error(NodeErrc::kBadRequest, error.ToString()));
}

void NodeService::ReplyError(const net::ConnectionPtr& conn, uint64_t request_id, const Status& st) {
  response_.Clear();
  response_.set_request_id(request_id);
  response_.set_code(ToWireCode(st));
  response_.set_error_text(st.message());
  conn->SendFrame(response_, {});
}

void NodeService::OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) {
  const int64_t start_ns = MonoNanos();
  if (!request_.ParseFromArray(header.data(), static_cast<int>(header.size()))) {
    // A CRC-valid frame whose command does not parse: a protocol violation.
    OnProtocolError(conn, Status::Error(NodeErrc::kBadRequest, "request header is not a NodeRequest"));
    conn->Close();
    return;
  }
  Status valid = protocol::ValidateNodeRequest(request_, payload.view(), options_.limits);
  if (!valid.ok()) {
    probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    ReplyError(conn, request_.request_id(), valid);
    return;
  }
  switch (request_.op_case()) {
    case proto::NodeRequest::kAddEntry:
      HandleAdd(conn, request_, std::move(payload), start_ns);
      return;
    case proto::NodeRequest::kReadEntry:
      HandleRead(conn, request_);
      return;
    case proto::NodeRequest::kReadLac: {
      SegmentState s = store_->GetSegment(SegmentId(request_.read_lac().segment_id()));
      const std::string seg_name = "segment " + std::to_string(request_.read_lac().segment_id());
      if (s.deleted) {
        ReplyError(conn, request_.request_id(), Status::Error(NodeErrc::kNoSuchSegment, seg_name + " was deleted"));
        return;
      }
      if (!s.exists) {
        // A node that lost a journal region of unknown content cannot say it never had the segment.
        ReplyError(conn, request_.request_id(),
                   s.lost_unknown_region ? Status::Error(NodeErrc::kIoError,
                                                         "this node lost a journal region of unknown content and "
                                                         "cannot say " +
                                                             seg_name + " is missing; read another replica")
                                         : Status::Error(NodeErrc::kNoSuchSegment, seg_name + " is not on this node"));
        return;
      }
      response_.Clear();
      response_.set_request_id(request_.request_id());
      auto* r = response_.mutable_read_lac();
      r->set_segment_id(request_.read_lac().segment_id());
      r->set_lac(s.lac.value());
      r->set_last_entry_id(s.last_entry.value());
      r->set_fenced(s.fenced);
      conn->SendFrame(response_, {});
      return;
    }
    case proto::NodeRequest::kWriteLac: {
      const auto& w = request_.write_lac();
      Result<EntryId> lac = store_->WriteLac(SegmentId(w.segment_id()), EntryId(w.lac()));
      if (!lac.ok()) {
        ReplyError(conn, request_.request_id(), lac.status());
        return;
      }
      response_.Clear();
      response_.set_request_id(request_.request_id());
      response_.mutable_write_lac()->set_segment_id(w.segment_id());
      response_.mutable_write_lac()->set_lac(lac->value());
      conn->SendFrame(response_, {});
      return;
    }
    case proto::NodeRequest::kDeleteSegments:
      HandleDelete(conn, request_);
      return;
    case proto::NodeRequest::kNodeInfo: {
      StoreInfo info = store_->Info();
      response_.Clear();
      response_.set_request_id(request_.request_id());
      auto* r = response_.mutable_node_info();
      r->set_node_id(info.node_id);
      r->set_instance_id(info.instance_id);
      r->set_cluster_id(info.cluster_id);
      r->set_protocol_version(proto::NODE_PROTOCOL_V1);
      r->set_healthy(info.healthy);
      r->set_unhealthy_reason(info.unhealthy_reason);
      r->set_journal_files(info.journal_files);
      r->set_journal_bytes(info.journal_bytes);
      r->set_segments(info.segments);
      for (uint64_t id : info.damaged_segments) r->add_damaged_segments(id);
      r->set_disk_free_bytes(info.disk_free_bytes);
      r->set_lost_unknown_region(info.lost_unknown_region);
      conn->SendFrame(response_, {});
      return;
    }
    case proto::NodeRequest::OP_NOT_SET:
      break;
  }
  DLOG_CHECK(false) << "validated request without an op";
}

void NodeService::HandleAdd(const net::ConnectionPtr& conn, const proto::NodeRequest& req, Slice payload,
                            int64_t start_ns) {
  const auto& a = req.add_entry();
  Pending* p = Acquire(conn, req.request_id(), Kind::kAdd);
  p->start_ns = start_ns;
  p->segment = SegmentId(a.segment_id());
  p->entry = EntryId(a.entry_id());
  store_->AddEntry(p->segment, p->entry, EntryId(a.lac()), a.payload_crc32c(), std::move(payload), a.recovery(),
                   [this, p](const Status& st) {
                     p->status = st;
                     Complete(p);
                   });
}

void NodeService::HandleRead(const net::ConnectionPtr& conn, const proto::NodeRequest& req) {
  const auto& q = req.read_entry();
  // Test builds: lose a fencing read without a reply (a fence that never arrived).
  if (q.fence() && DLOG_FAILPOINT("node.drop_fence")) return;
  Pending* p = Acquire(conn, req.request_id(), Kind::kRead);
  p->segment = SegmentId(q.segment_id());
  p->entry = EntryId(q.entry_id());
  if (q.long_poll_timeout_ms() > 0 && !q.fence()) {
    SegmentState s = store_->GetSegment(p->segment);
    if (s.exists && s.lac < p->entry && long_poll_count_ < options_.max_long_poll_waiters) {
      p->poll_deadline_ns = MonoNanos() + int64_t{q.long_poll_timeout_ms()} * 1000000;
      long_polls_[p->segment].push_back(p);
      ++long_poll_count_;
      has_long_polls_.store(true, std::memory_order_release);
      // The LAC may have moved between the check and the registration; look again.
      s = store_->GetSegment(p->segment);
      if (s.lac >= p->entry) WakeLongPolls(p->segment, s.lac);
      return;
    }
  }
  StartRead(p, q.fence());
}

void NodeService::StartRead(Pending* p, bool fence) {
  store_->ReadEntry(p->segment, p->entry, fence, [this, p](ReadResult&& r) {
    p->read = std::move(r);
    p->status = p->read.status;
    Complete(p);
  });
}

void NodeService::WakeLongPolls(SegmentId segment, EntryId lac) {
  auto it = long_polls_.find(segment);
  if (it == long_polls_.end()) return;
  auto& waiters = it->second;
  size_t kept = 0;
  for (Pending* p : waiters) {
    if (p->entry <= lac) {
      --long_poll_count_;
      StartRead(p, false);
    } else {
      waiters[kept++] = p;
    }
  }
  waiters.resize(kept);
  if (waiters.empty()) long_polls_.erase(it);
  if (long_poll_count_ == 0) has_long_polls_.store(false, std::memory_order_release);
}

void NodeService::OnPollTimer(uv_timer_t* h) { static_cast<NodeService*>(h->data)->ExpireLongPolls(false); }

void NodeService::ExpireLongPolls(bool all) {
  if (long_poll_count_ == 0) return;
  const int64_t now = MonoNanos();
  for (auto it = long_polls_.begin(); it != long_polls_.end();) {
    auto& waiters = it->second;
    size_t kept = 0;
    for (Pending* p : waiters) {
      if (all) {
        // Shutting down: the connections are gone and the store may be closed.
        --long_poll_count_;
        Release(p);
      } else if (p->poll_deadline_ns <= now || p->conn->closed()) {
        --long_poll_count_;
        // Answer with the current state: the entry if it arrived after all, else NO_SUCH_ENTRY + LAC.
        StartRead(p, false);
      } else {
        waiters[kept++] = p;
      }
    }
    waiters.resize(kept);
    it = waiters.empty() ? long_polls_.erase(it) : std::next(it);
  }
  if (long_poll_count_ == 0) has_long_polls_.store(false, std::memory_order_release);
}

void NodeService::HandleDelete(const net::ConnectionPtr& conn, const proto::NodeRequest& req) {
  Pending* p = Acquire(conn, req.request_id(), Kind::kDelete);
  std::vector<SegmentId> ids;
  ids.reserve(static_cast<size_t>(req.delete_segments().segment_ids_size()));
  for (uint64_t id : req.delete_segments().segment_ids()) ids.emplace_back(id);
  store_->DeleteSegments(std::move(ids), [this, p](const Status& st, uint32_t deleted) {
    p->status = st;
    p->deleted = deleted;
    Complete(p);
  });
}

void NodeService::SendPending(Pending* p) {
  if (p->conn->closed()) {
    Release(p);
    return;
  }
  response_.Clear();
  response_.set_request_id(p->request_id);
  response_.set_code(ToWireCode(p->status));
  if (!p->status.ok()) response_.set_error_text(p->status.message());
  std::string_view payload;
  switch (p->kind) {
    case Kind::kAdd: {
      auto* r = response_.mutable_add_entry();
      r->set_segment_id(p->segment.value());
      r->set_entry_id(p->entry.value());
      // Rejections (FENCED, TOO_MANY_REQUESTS, BAD_REQUEST) are counted by the store.
      if (p->status.ok()) {
        probe_->add_latency_us.Record(static_cast<uint64_t>((MonoNanos() - p->start_ns) / 1000));
      }
      break;
    }
    case Kind::kRead: {
      auto* r = response_.mutable_read_entry();
      r->set_segment_id(p->segment.value());
      r->set_entry_id(p->entry.value());
      r->set_lac(p->read.segment.lac.value());
      r->set_last_entry_id(p->read.segment.last_entry.value());
      r->set_fenced(p->read.segment.fenced);
      if (p->status.ok() && p->read.has_entry) {
        r->set_has_entry(true);
        r->set_payload_crc32c(p->read.payload_crc32c);
        payload = p->read.payload.view();
      }
      break;  // TOO_MANY_REQUESTS is counted by the store (fences too)
    }
    case Kind::kDelete:
      response_.mutable_delete_segments()->set_deleted(p->deleted);
      break;
  }
  p->conn->SendFrame(response_, payload);
  Release(p);
}

}  // namespace dlog::node
