#include "server/log_service.h"

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/log_stat.h"
#include "client/log_wire.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "log_service.pb.h"
#include "logstore/log/errors.h"
#include "logstore/log/namespace.h"

namespace dlog::server {
namespace {

constexpr uint64_t kTickMs = 20;

std::string NamespaceOf(const proto::LogRequest& r) {
  return r.namespace_name().empty() ? std::string("default") : r.namespace_name();
}

std::string WriterKey(const std::string& ns, const std::string& log_name) { return ns + '\0' + log_name; }

}  // namespace

class LogService::Impl {
 public:
  Impl(net::EventLoop* loop, log::LogClient* client, LogServiceOptions options, LogServiceProbe* probe)
      : loop_(loop), client_(client), opts_(std::move(options)), probe_(probe) {}

  ~Impl() { DLOG_CHECK(timer_ == nullptr) << "LogService destroyed without Stop()"; }

  void Start() {
    loop_->RunSync([this] {
      timer_ = new uv_timer_t;
      uv_timer_init(loop_->uv(), timer_);
      timer_->data = this;
      uv_timer_start(
          timer_, [](uv_timer_t* h) { static_cast<Impl*>(h->data)->OnTick(); }, kTickMs, kTickMs);
    });
    for (int i = 0; i < std::max(1, opts_.admin_threads); ++i) {
      admin_threads_.emplace_back([this] { AdminLoop(); });
    }
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    {
      MutexLock l(&admin_mu_);
      admin_stop_ = true;
      admin_cv_.SignalAll();
    }
    for (std::thread& t : admin_threads_) t.join();
    admin_threads_.clear();

    loop_->RunSync([this] {
      stopping_ = true;
      conns_.clear();  // the server has closed every connection: their readers go
      waiting_.clear();
      std::vector<std::shared_ptr<WriterEntry>> open;
      for (auto& [key, e] : writers_) {
        FailQueued(e.get(), Status::Error(CommonErrc::kUnavailable, "the log service is stopping"));
        if (e->state == WState::kOpen) open.push_back(e);
      }
      // Opening writers are closed once open; closing ones are on their way.
      for (auto& e : open) CloseWriter(e);
    });
    const int64_t deadline = MonoMillis() + opts_.stop_timeout_ms;
    for (;;) {
      bool done = false;
      size_t left = 0;
      loop_->RunSync([&] {
        left = writers_.size();
        done = writers_.empty() && lib_ops_ == 0;
      });
      if (done) break;
      if (MonoMillis() > deadline) {
        DLOG_WARN << "log service: " << left << " writer(s) did not close within " << opts_.stop_timeout_ms
                  << " ms; abandoning them (their logs' next writer recovers them)";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    loop_->RunSync([this] {
      writers_.clear();
      namespaces_.clear();
      if (timer_ != nullptr) {
        uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(timer_, nullptr)),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      }
    });
  }

  // ---- FrameHandler (loop thread) ----

  void OnOpen(const net::ConnectionPtr& conn) {
    conns_[conn->id()] = std::make_unique<ConnState>();
    probe_->connections_total.fetch_add(1, std::memory_order_relaxed);
    probe_->connections_open.fetch_add(1, std::memory_order_relaxed);
  }

  void OnClose(const net::ConnectionPtr& conn) {
    conns_.erase(conn->id());
    probe_->connections_open.fetch_sub(1, std::memory_order_relaxed);
  }

  void OnProtocolError(const net::ConnectionPtr& conn, const Status& error) {
    probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
    DLOG_WARN << "log service: closing connection from " << conn->peer() << ": " << error.ToString();
    response_.Clear();
    response_.set_request_id(0);
    response_.set_code(proto::LOG_STATUS_BAD_REQUEST);
    response_.set_error_text(error.ToString());
    conn->SendFrame(response_, {});
  }

  void OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) {
    const int64_t start_ns = MonoNanos();
    probe_->requests_total.fetch_add(1, std::memory_order_relaxed);
    if (!request_.ParseFromArray(header.data(), static_cast<int>(header.size()))) {
      // A CRC-valid frame whose command does not parse: a protocol violation.
      OnProtocolError(conn, Status::Error(CommonErrc::kInvalidArgument, "request header is not a LogRequest"));
      conn->Close();
      return;
    }
    ConnState* cs = FindConn(conn);
    if (cs == nullptr) return;  // closed meanwhile
    ++cs->in_flight;
    const uint64_t id = request_.request_id();
    if (Status valid = protocol::ValidateLogRequest(request_, payload.view(), opts_.limits); !valid.ok()) {
      probe_->bad_requests_total.fetch_add(1, std::memory_order_relaxed);
      ReplyError(conn, id, proto::LOG_STATUS_BAD_REQUEST, valid.message());
      return;
    }
    if (cs->in_flight > opts_.max_requests_per_connection) {
      ReplyError(conn, id, proto::LOG_STATUS_BUSY,
                 "more than " + std::to_string(opts_.max_requests_per_connection) +
                     " requests in flight on this connection; wait for replies");
      return;
    }
    if (stopping_) {
      ReplyError(conn, id, proto::LOG_STATUS_UNAVAILABLE, "the log service is stopping");
      return;
    }
    const std::string ns = NamespaceOf(request_);
    switch (request_.op_case()) {
      case proto::LogRequest::kCreateLog: {
        std::string name = request_.create_log().log();
        RunAdmin(conn, id, ns, [name](log::Namespace* n, proto::LogResponse* r) {
          Status st = n->CreateLogSync(name);
          if (st.ok()) r->mutable_create_log();
          return st;
        });
        return;
      }
      case proto::LogRequest::kDeleteLog:
        HandleDelete(conn, id, ns, request_.delete_log().log());
        return;
      case proto::LogRequest::kListLogs:
        RunAdmin(conn, id, ns, [](log::Namespace* n, proto::LogResponse* r) {
          auto logs = n->ListLogsSync();
          if (!logs.ok()) return logs.status();
          std::sort(logs->begin(), logs->end());
          auto* out = r->mutable_list_logs();
          for (std::string& l : *logs) out->add_logs(std::move(l));
          return Status::OK();
        });
        return;
      case proto::LogRequest::kGetLogInfo:
        HandleStat(conn, id, ns, request_.get_log_info().log());
        return;
      case proto::LogRequest::kTruncate: {
        std::string name = request_.truncate().log();
        log::Dlsn dlsn = client::FromProto(request_.truncate().dlsn());
        RunAdmin(conn, id, ns, [name, dlsn](log::Namespace* n, proto::LogResponse* r) {
          Status st = n->TruncateSync(name, dlsn);
          if (st.ok()) r->mutable_truncate();
          return st;
        });
        return;
      }
      case proto::LogRequest::kAppend:
        HandleAppend(conn, id, ns, request_.append(), std::move(payload), start_ns);
        return;
      case proto::LogRequest::kRead:
        HandleRead(conn, id, ns, request_.read());
        return;
      case proto::LogRequest::kCloseReader:
        HandleCloseReader(conn, id, request_.close_reader().reader_id());
        return;
      case proto::LogRequest::OP_NOT_SET:
        break;
    }
    DLOG_CHECK(false) << "validated log request without an op";
  }

 private:
  // ---- per-connection state ----

  struct WaitingRead {
    net::ConnectionPtr conn;
    uint64_t request_id = 0;
    uint32_t max_records = 0;
    int64_t deadline_ns = 0;
  };

  struct ReaderEntry {
    explicit ReaderEntry(LogServiceProbe* p) : probe(p) { probe->readers_open.fetch_add(1); }
    ~ReaderEntry() { probe->readers_open.fetch_sub(1); }
    LogServiceProbe* const probe;
    uint64_t id = 0;
    uint64_t conn_id = 0;
    std::string log_name;
    std::unique_ptr<log::LogReader> reader;  // null while opening or after a failed open
    bool opening = true;
    bool read_in_flight = false;
    std::deque<log::LogRecord> buffered;
    Status error;  // sticky: the next read gets it, then the reader is closed
    std::optional<WaitingRead> waiting;
  };

  struct ConnState {
    size_t in_flight = 0;
    uint64_t next_reader_id = 1;
    std::map<uint64_t, std::shared_ptr<ReaderEntry>> readers;
  };

  // ---- writers ----

  struct PendingAppend {
    net::ConnectionPtr conn;
    uint64_t request_id = 0;
    std::vector<uint32_t> sizes;
    std::vector<int64_t> txids;
    Slice payload;
    int64_t start_ns = 0;
  };

  enum class WState { kOpening, kOpen, kClosing };

  struct WriterEntry {
    std::string key;
    std::string log_name;
    log::Namespace* ns = nullptr;  // namespaces live until Stop
    WState state = WState::kOpening;
    std::unique_ptr<log::LogWriter> writer;
    std::deque<PendingAppend> queued;  // while opening or closing
    int64_t in_flight = 0;             // records being written
    int64_t last_used_ns = 0;
    std::optional<log::Dlsn> last_dlsn;              // last record acknowledged to this service
    bool close_when_open = false;                    // a DeleteLog waits for this writer to go
    std::vector<std::function<void()>> after_close;  // run once it is closed (or failed to open)
  };

  struct AppendCtx {
    net::ConnectionPtr conn;
    uint64_t request_id = 0;
    int64_t start_ns = 0;
    size_t bytes = 0;
    std::weak_ptr<WriterEntry> entry;
    std::vector<std::optional<Result<log::WriteResult>>> results;
    std::atomic<size_t> remaining{0};
  };

  struct NsEntry {
    std::unique_ptr<log::Namespace> ns;
    std::vector<std::function<void(Result<log::Namespace*>)>> waiters;
  };

  using AdminFn = std::function<Status(log::Namespace*, proto::LogResponse*)>;
  struct AdminJob {
    net::ConnectionPtr conn;
    uint64_t request_id = 0;
    log::Namespace* ns = nullptr;
    AdminFn fn;
  };

  ConnState* FindConn(const net::ConnectionPtr& conn) {
    auto it = conns_.find(conn->id());
    return it == conns_.end() ? nullptr : it->second.get();
  }

  // Posts `task` to the service loop from a library callback. Library
  // callbacks capture the loop (which outlives everything), never use `this`
  // themselves: a late one may run after this service is gone. If the loop
  // has stopped (only after Stop gave up waiting), the task is dropped.
  static void PostTo(net::EventLoop* loop, std::function<void()> task) { IgnoreError(loop->TryPost(task)); }

  // ---- replies (loop thread); each accepted request gets exactly one ----

  void SendReply(const net::ConnectionPtr& conn, const proto::LogResponse& r, std::string_view payload) {
    if (ConnState* cs = FindConn(conn); cs != nullptr && cs->in_flight > 0) --cs->in_flight;
    if (r.code() != proto::LOG_STATUS_OK) probe_->errors_total.fetch_add(1, std::memory_order_relaxed);
    if (!conn->closed()) conn->SendFrame(r, payload);
  }

  void ReplyError(const net::ConnectionPtr& conn, uint64_t id, proto::LogStatusCode code, const std::string& text) {
    response_.Clear();
    response_.set_request_id(id);
    response_.set_code(code);
    response_.set_error_text(text);
    SendReply(conn, response_, {});
  }

  void ReplyStatus(const net::ConnectionPtr& conn, uint64_t id, const Status& st) {
    ReplyError(conn, id, client::ToLogWireCode(st), client::ToLogWireText(st));
  }

  // ---- namespaces ----

  void GetNamespace(const std::string& name, std::function<void(Result<log::Namespace*>)> cb) {
    std::unique_ptr<NsEntry>& e = namespaces_[name];
    if (e && e->ns) {
      cb(e->ns.get());
      return;
    }
    if (e) {
      e->waiters.push_back(std::move(cb));
      return;
    }
    e = std::make_unique<NsEntry>();
    e->waiters.push_back(std::move(cb));
    ++lib_ops_;
    log::Namespace::Open(client_->segments(), name,
                         [this, loop = loop_, name](Result<std::unique_ptr<log::Namespace>> r) {
                           auto held = std::make_shared<Result<std::unique_ptr<log::Namespace>>>(std::move(r));
                           PostTo(loop, [this, name, held] {
                             --lib_ops_;
                             OnNamespaceOpened(name, std::move(*held));
                           });
                         });
  }

  void OnNamespaceOpened(const std::string& name, Result<std::unique_ptr<log::Namespace>> r) {
    auto it = namespaces_.find(name);
    if (it == namespaces_.end()) return;  // Stop cleared it
    std::vector<std::function<void(Result<log::Namespace*>)>> waiters = std::move(it->second->waiters);
    if (!r.ok()) {
      namespaces_.erase(it);  // the next request tries again (it may have been created since)
      for (auto& w : waiters) w(r.status());
      return;
    }
    it->second->ns = std::move(r).value();
    log::Namespace* ns = it->second->ns.get();
    for (auto& w : waiters) w(ns);
  }

  // Runs `fn` with the namespace, or replies with why it cannot be had.
  void WithNamespace(const std::string& name, const net::ConnectionPtr& conn, uint64_t id,
                     std::function<void(log::Namespace*)> fn) {
    GetNamespace(name, [this, conn, id, fn = std::move(fn)](Result<log::Namespace*> ns) {
      if (!ns.ok()) {
        ReplyStatus(conn, id, ns.status());
        return;
      }
      fn(*ns);
    });
  }

  // ---- admin operations (worker threads) ----

  void RunAdmin(const net::ConnectionPtr& conn, uint64_t id, const std::string& ns, AdminFn fn) {
    WithNamespace(ns, conn, id, [this, conn, id, fn = std::move(fn)](log::Namespace* n) {
      {
        MutexLock l(&admin_mu_);
        if (!admin_stop_ && admin_queue_.size() < opts_.admin_queue) {
          admin_queue_.push_back(AdminJob{conn, id, n, fn});
          admin_cv_.Signal();
          return;
        }
      }
      ReplyError(conn, id, proto::LOG_STATUS_BUSY,
                 "the log service has " + std::to_string(opts_.admin_queue) + " admin requests queued; retry later");
    });
  }

  void AdminLoop() {
    for (;;) {
      AdminJob job;
      {
        MutexLock l(&admin_mu_);
        while (!admin_stop_ && admin_queue_.empty()) admin_cv_.Wait(&admin_mu_);
        if (admin_stop_) return;
        job = std::move(admin_queue_.front());
        admin_queue_.pop_front();
      }
      auto response = std::make_shared<proto::LogResponse>();
      Status st = job.fn(job.ns, response.get());
      PostTo(loop_, [this, conn = std::move(job.conn), id = job.request_id, response, st] {
        response->set_request_id(id);
        if (!st.ok()) {
          response->clear_op();
          response->set_code(client::ToLogWireCode(st));
          response->set_error_text(client::ToLogWireText(st));
        }
        SendReply(conn, *response, {});
      });
    }
  }

  void HandleStat(const net::ConnectionPtr& conn, uint64_t id, const std::string& ns, const std::string& log_name) {
    // What this service's own writer knows (its OPEN segment), snapshot on the loop.
    std::optional<client::WriterHint> hint;
    if (auto it = writers_.find(WriterKey(ns, log_name)); it != writers_.end()) {
      const WriterEntry& e = *it->second;
      if (e.state == WState::kOpen && e.writer) hint = client::WriterHint{e.writer->next_seq(), e.last_dlsn};
    }
    const int64_t timeout = opts_.stat_read_timeout_ms;
    RunAdmin(conn, id, ns, [log_name, hint, timeout](log::Namespace* n, proto::LogResponse* r) {
      auto stat = client::StatLogSync(n, log_name, hint, timeout);
      if (!stat.ok()) return stat.status();
      r->mutable_get_log_info()->mutable_stat()->Swap(&stat.value());
      return Status::OK();
    });
  }

  void HandleDelete(const net::ConnectionPtr& conn, uint64_t id, const std::string& ns, const std::string& log_name) {
    auto run = [this, conn, id, ns, log_name] {
      RunAdmin(conn, id, ns, [log_name](log::Namespace* n, proto::LogResponse* r) {
        Status st = n->DeleteLogSync(log_name);
        if (st.ok()) r->mutable_delete_log();
        return st;
      });
    };
    auto it = writers_.find(WriterKey(ns, log_name));
    if (it == writers_.end()) {
      run();
      return;
    }
    // Our own writer holds the log's lock: close it first.
    std::shared_ptr<WriterEntry> e = it->second;
    e->after_close.push_back(run);
    if (e->state == WState::kOpen) {
      CloseWriter(e);
    } else if (e->state == WState::kOpening) {
      e->close_when_open = true;
    }
  }

  // ---- appends ----

  void HandleAppend(const net::ConnectionPtr& conn, uint64_t id, const std::string& ns, const proto::AppendRequest& a,
                    Slice payload, int64_t start_ns) {
    PendingAppend p;
    p.conn = conn;
    p.request_id = id;
    p.sizes.assign(a.record_sizes().begin(), a.record_sizes().end());
    p.txids.assign(a.txids().begin(), a.txids().end());
    p.payload = std::move(payload);
    p.start_ns = start_ns;
    const std::string key = WriterKey(ns, a.log());
    WithNamespace(ns, conn, id, [this, key, log_name = a.log(), p = std::move(p)](log::Namespace* n) mutable {
      std::shared_ptr<WriterEntry>& e = writers_[key];
      if (!e) {
        e = std::make_shared<WriterEntry>();
        e->key = key;
        e->log_name = log_name;
        e->ns = n;
        e->queued.push_back(std::move(p));
        OpenWriter(e);
        return;
      }
      if (e->state == WState::kOpen) {
        DoAppend(e, std::move(p));
      } else {
        e->queued.push_back(std::move(p));
      }
    });
  }

  void OpenWriter(const std::shared_ptr<WriterEntry>& e) {
    e->state = WState::kOpening;
    log::WriterOptions wo;
    if (!opts_.owner_id.empty()) wo.owner_id = opts_.owner_id;
    wo.address = opts_.address;
    std::weak_ptr<WriterEntry> weak = e;
    ++lib_ops_;
    e->ns->OpenWriter(e->log_name, wo, [this, loop = loop_, weak](Result<std::unique_ptr<log::LogWriter>> r) {
      auto held = std::make_shared<Result<std::unique_ptr<log::LogWriter>>>(std::move(r));
      PostTo(loop, [this, weak, held] {
        --lib_ops_;
        OnWriterOpened(weak, std::move(*held));
      });
    });
  }

  void OnWriterOpened(const std::weak_ptr<WriterEntry>& weak, Result<std::unique_ptr<log::LogWriter>> r) {
    std::shared_ptr<WriterEntry> e = weak.lock();
    if (!e) return;  // Stop gave up on it; the writer (if any) is abandoned here
    if (!r.ok()) {
      DLOG_INFO << "log service: cannot open a writer for log '" << e->log_name << "': " << r.status().ToString();
      FailQueued(e.get(), r.status());
      EraseWriter(e);
      RunAfterClose(e.get());
      return;
    }
    e->writer = std::move(r).value();
    e->state = WState::kOpen;
    e->last_used_ns = MonoNanos();
    probe_->writers_open.fetch_add(1, std::memory_order_relaxed);
    std::deque<PendingAppend> queued = std::move(e->queued);
    e->queued.clear();
    if (stopping_) {
      for (PendingAppend& p : queued) {
        ReplyError(p.conn, p.request_id, proto::LOG_STATUS_UNAVAILABLE, "the log service is stopping");
      }
      CloseWriter(e);
      return;
    }
    for (PendingAppend& p : queued) DoAppend(e, std::move(p));
    if (e->close_when_open) CloseWriter(e);
  }

  void DoAppend(const std::shared_ptr<WriterEntry>& e, PendingAppend p) {
    auto ctx = std::make_shared<AppendCtx>();
    ctx->conn = std::move(p.conn);
    ctx->request_id = p.request_id;
    ctx->start_ns = p.start_ns;
    ctx->bytes = p.payload.size();
    ctx->entry = e;
    const size_t n = p.sizes.size();
    ctx->results.resize(n);
    ctx->remaining.store(n, std::memory_order_relaxed);
    e->in_flight += static_cast<int64_t>(n);
    e->last_used_ns = MonoNanos();
    size_t off = 0;
    for (size_t i = 0; i < n; ++i) {
      Slice rec = p.payload.Sub(off, p.sizes[i]);
      off += p.sizes[i];
      // Callbacks run on the library's loop, in write order; each fills its
      // own slot and the last one posts the reply.
      auto cb = [this, loop = loop_, ctx, i](Result<log::WriteResult> r) {
        ctx->results[i].emplace(std::move(r));
        if (ctx->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          PostTo(loop, [this, ctx] { FinishAppend(ctx); });
        }
      };
      if (p.txids.empty()) {
        e->writer->Write(std::move(rec), std::move(cb));
      } else {
        e->writer->Write(std::move(rec), p.txids[i], std::move(cb));
      }
    }
  }

  void FinishAppend(const std::shared_ptr<AppendCtx>& ctx) {
    response_.Clear();
    response_.set_request_id(ctx->request_id);
    proto::AppendResponse* a = response_.mutable_append();
    Status first_error;
    std::optional<log::Dlsn> last;
    for (const auto& r : ctx->results) {
      if (!r->ok()) {
        first_error = r->status();
        break;
      }
      proto::AppendedRecord* rec = a->add_records();
      client::ToProto((*r)->dlsn, rec->mutable_dlsn());
      rec->set_seq((*r)->seq);
      last = (*r)->dlsn;
    }
    probe_->appended_records_total.fetch_add(static_cast<uint64_t>(a->records_size()), std::memory_order_relaxed);
    if (first_error.ok()) probe_->appended_bytes_total.fetch_add(ctx->bytes, std::memory_order_relaxed);
    if (std::shared_ptr<WriterEntry> e = ctx->entry.lock()) {
      e->in_flight -= static_cast<int64_t>(ctx->results.size());
      e->last_used_ns = MonoNanos();
      if (last && (!e->last_dlsn || *e->last_dlsn < *last)) e->last_dlsn = last;
      if (!first_error.ok() && e->state == WState::kOpen && e->writer && !e->writer->health().ok()) {
        DLOG_WARN << "log service: the writer of log '" << e->log_name << "' failed: " << e->writer->health().ToString()
                  << "; the next append opens a new one";
        CloseWriter(e);
      }
    }
    if (!first_error.ok()) {
      response_.set_code(client::ToLogWireCode(first_error));
      response_.set_error_text(client::ToLogWireText(first_error));
    }
    SendReply(ctx->conn, response_, {});
    probe_->append_latency_us.Record(static_cast<uint64_t>((MonoNanos() - ctx->start_ns) / 1000));
  }

  void CloseWriter(const std::shared_ptr<WriterEntry>& e) {
    if (e->state != WState::kOpen) return;
    e->state = WState::kClosing;
    std::weak_ptr<WriterEntry> weak = e;
    ++lib_ops_;
    e->writer->Close([this, loop = loop_, weak](Status st) {
      PostTo(loop, [this, weak, st] {
        --lib_ops_;
        OnWriterClosed(weak, st);
      });
    });
  }

  void OnWriterClosed(const std::weak_ptr<WriterEntry>& weak, const Status& st) {
    std::shared_ptr<WriterEntry> e = weak.lock();
    if (!e) return;
    if (!st.ok() && !st.Is(log::LogErrc::kClosed)) {
      DLOG_INFO << "log service: closing the writer of log '" << e->log_name << "': " << st.ToString();
    }
    e->writer.reset();
    probe_->writers_open.fetch_sub(1, std::memory_order_relaxed);
    e->close_when_open = false;
    RunAfterClose(e.get());
    if (!stopping_ && !e->queued.empty()) {
      OpenWriter(e);  // appends arrived while it closed
      return;
    }
    FailQueued(e.get(), Status::Error(CommonErrc::kUnavailable, "the log service is stopping"));
    EraseWriter(e);
  }

  void RunAfterClose(WriterEntry* e) {
    std::vector<std::function<void()>> fns = std::move(e->after_close);
    e->after_close.clear();
    for (auto& f : fns) f();
  }

  void FailQueued(WriterEntry* e, const Status& st) {
    std::deque<PendingAppend> queued = std::move(e->queued);
    e->queued.clear();
    for (PendingAppend& p : queued) ReplyStatus(p.conn, p.request_id, st);
  }

  void EraseWriter(const std::shared_ptr<WriterEntry>& e) {
    auto it = writers_.find(e->key);
    if (it != writers_.end() && it->second == e) writers_.erase(it);
  }

  // ---- reads ----

  void HandleRead(const net::ConnectionPtr& conn, uint64_t id, const std::string& ns, const proto::ReadRequest& q) {
    ConnState* cs = FindConn(conn);
    std::shared_ptr<ReaderEntry> r;
    if (q.reader_id() != 0) {
      auto it = cs->readers.find(q.reader_id());
      if (it == cs->readers.end()) {
        ReplyError(conn, id, proto::LOG_STATUS_NO_SUCH_READER,
                   "reader " + std::to_string(q.reader_id()) +
                       " is not open on this connection (readers close with their connection and after an error)");
        return;
      }
      r = it->second;
      if (r->waiting) {
        ReplyError(conn, id, proto::LOG_STATUS_BAD_REQUEST,
                   "a read is already waiting on reader " + std::to_string(r->id) + "; one read at a time");
        return;
      }
    } else {
      if (cs->readers.size() >= opts_.max_readers_per_connection) {
        ReplyError(conn, id, proto::LOG_STATUS_TOO_MANY_READERS,
                   "this connection already has " + std::to_string(cs->readers.size()) +
                       " readers open (the most allowed); close one first");
        return;
      }
      r = std::make_shared<ReaderEntry>(probe_);
      r->id = cs->next_reader_id++;
      r->conn_id = conn->id();
      r->log_name = q.log();
      cs->readers[r->id] = r;
      std::weak_ptr<ReaderEntry> weak = r;
      log::StartPosition start = client::FromProto(q.start());
      GetNamespace(ns, [this, weak, start](Result<log::Namespace*> n) {
        std::shared_ptr<ReaderEntry> entry = weak.lock();
        if (!entry) return;
        if (!n.ok()) {
          entry->opening = false;
          entry->error = n.status();
          ServeRead(entry);
          return;
        }
        OpenReader(entry, *n, start);
      });
    }
    r->waiting = WaitingRead{conn, id, q.max_records(), MonoNanos() + int64_t{q.wait_ms()} * 1000000};
    ServeRead(r);
  }

  void OpenReader(const std::shared_ptr<ReaderEntry>& r, log::Namespace* n, log::StartPosition start) {
    std::weak_ptr<ReaderEntry> weak = r;
    ++lib_ops_;
    n->OpenReader(r->log_name, start, log::ReaderOptions{},
                  [this, loop = loop_, weak](Result<std::unique_ptr<log::LogReader>> res) {
                    auto held = std::make_shared<Result<std::unique_ptr<log::LogReader>>>(std::move(res));
                    PostTo(loop, [this, weak, held] {
                      --lib_ops_;
                      std::shared_ptr<ReaderEntry> entry = weak.lock();
                      if (!entry) return;  // its connection closed; the reader goes with `held`
                      entry->opening = false;
                      if (held->ok()) {
                        entry->reader = std::move(*held).value();
                      } else {
                        entry->error = held->status();
                      }
                      ServeRead(entry);
                    });
                  });
  }

  // Answers the waiting read if it can, else makes sure records are on the way.
  void ServeRead(const std::shared_ptr<ReaderEntry>& r) {
    if (!r->waiting) return;
    if (!r->buffered.empty()) {
      ReplyRecords(r);
      return;
    }
    if (!r->error.ok()) {
      ReplyReaderError(r);
      return;
    }
    if (!r->opening && !r->read_in_flight && r->reader) IssueReadNext(r, r->waiting->max_records);
    if (r->waiting->deadline_ns <= MonoNanos()) {
      ReplyRecords(r);  // wait_ms 0: none yet
      return;
    }
    waiting_.push_back(r);
  }

  void IssueReadNext(const std::shared_ptr<ReaderEntry>& r, size_t max_records) {
    r->read_in_flight = true;
    std::weak_ptr<ReaderEntry> weak = r;
    r->reader->ReadNext(std::min(max_records, opts_.read_batch_records),
                        [this, loop = loop_, weak](Result<std::vector<log::LogRecord>> res) {
                          auto held = std::make_shared<Result<std::vector<log::LogRecord>>>(std::move(res));
                          PostTo(loop, [this, weak, held] { OnReadDone(weak, held.get()); });
                        });
  }

  void OnReadDone(const std::weak_ptr<ReaderEntry>& weak, Result<std::vector<log::LogRecord>>* res) {
    std::shared_ptr<ReaderEntry> r = weak.lock();
    if (!r) return;
    r->read_in_flight = false;
    if (res->ok()) {
      for (log::LogRecord& rec : res->value()) r->buffered.push_back(std::move(rec));
    } else {
      r->error = res->status();
    }
    ServeRead(r);
  }

  void ReplyRecords(const std::shared_ptr<ReaderEntry>& r) {
    WaitingRead w = std::move(*r->waiting);
    r->waiting.reset();
    response_.Clear();
    response_.set_request_id(w.request_id);
    proto::ReadResponse* rr = response_.mutable_read();
    rr->set_reader_id(r->id);
    payload_.clear();
    uint32_t n = 0;
    while (!r->buffered.empty() && n < w.max_records) {
      const log::LogRecord& rec = r->buffered.front();
      if (n > 0 && payload_.size() + rec.payload.size() > opts_.max_read_reply_bytes) break;
      proto::ReadRecordMeta* m = rr->add_records();
      client::ToProto(rec.dlsn, m->mutable_dlsn());
      m->set_seq(rec.seq);
      m->set_txid(rec.txid);
      m->set_size(static_cast<uint32_t>(rec.payload.size()));
      payload_.append(rec.payload.view());
      r->buffered.pop_front();
      ++n;
    }
    if (!r->buffered.empty()) {
      client::ToProto(r->buffered.front().dlsn, rr->mutable_position());
    } else if (r->reader) {
      client::ToProto(r->reader->position(), rr->mutable_position());
    }
    probe_->read_records_total.fetch_add(n, std::memory_order_relaxed);
    probe_->read_bytes_total.fetch_add(payload_.size(), std::memory_order_relaxed);
    SendReply(w.conn, response_, payload_);
    // Read ahead one batch so the next read finds records waiting.
    if (r->buffered.empty() && r->error.ok() && !r->opening && !r->read_in_flight && r->reader) {
      IssueReadNext(r, w.max_records);
    }
  }

  void ReplyReaderError(const std::shared_ptr<ReaderEntry>& r) {
    WaitingRead w = std::move(*r->waiting);
    r->waiting.reset();
    response_.Clear();
    response_.set_request_id(w.request_id);
    response_.set_code(client::ToLogWireCode(r->error));
    response_.set_error_text(client::ToLogWireText(r->error));
    response_.mutable_read()->set_reader_id(r->id);
    SendReply(w.conn, response_, {});
    // The reader is done: the client opens a new one if it wants to go on.
    if (ConnState* cs = FindConn(w.conn)) cs->readers.erase(r->id);
  }

  void HandleCloseReader(const net::ConnectionPtr& conn, uint64_t id, uint64_t reader_id) {
    ConnState* cs = FindConn(conn);
    auto it = cs->readers.find(reader_id);
    if (it == cs->readers.end()) {
      ReplyError(conn, id, proto::LOG_STATUS_NO_SUCH_READER,
                 "reader " + std::to_string(reader_id) + " is not open on this connection");
      return;
    }
    std::shared_ptr<ReaderEntry> r = it->second;
    cs->readers.erase(it);
    if (r->waiting) {
      WaitingRead w = std::move(*r->waiting);
      r->waiting.reset();
      ReplyError(w.conn, w.request_id, proto::LOG_STATUS_CLOSED, "reader " + std::to_string(reader_id) + " was closed");
    }
    response_.Clear();
    response_.set_request_id(id);
    response_.mutable_close_reader();
    SendReply(conn, response_, {});
  }

  // ---- timers ----

  void OnTick() {
    const int64_t now = MonoNanos();
    size_t kept = 0;
    for (size_t i = 0; i < waiting_.size(); ++i) {
      std::shared_ptr<ReaderEntry> r = waiting_[i].lock();
      if (!r || !r->waiting) continue;
      if (r->waiting->deadline_ns <= now || r->waiting->conn->closed()) {
        ReplyRecords(r);  // nothing arrived in time
        continue;
      }
      waiting_[kept++] = waiting_[i];
    }
    waiting_.resize(kept);

    if (stopping_ || opts_.writer_idle_ms <= 0) return;
    std::vector<std::shared_ptr<WriterEntry>> idle;
    for (auto& [key, e] : writers_) {
      if (e->state == WState::kOpen && e->in_flight == 0 && e->queued.empty() &&
          now - e->last_used_ns > opts_.writer_idle_ms * 1000000) {
        idle.push_back(e);
      }
    }
    for (auto& e : idle) {
      DLOG_DEBUG << "log service: closing the idle writer of log '" << e->log_name << "'";
      CloseWriter(e);
    }
  }

  net::EventLoop* const loop_;
  log::LogClient* const client_;
  const LogServiceOptions opts_;
  LogServiceProbe* const probe_;
  bool stopped_ = false;  // owner thread (Stop)

  // Loop thread only.
  bool stopping_ = false;
  uv_timer_t* timer_ = nullptr;
  proto::LogRequest request_;    // reused for every frame
  proto::LogResponse response_;  // reused for every reply
  std::string payload_;          // reused for every read reply
  std::unordered_map<uint64_t, std::unique_ptr<ConnState>> conns_;
  std::map<std::string, std::unique_ptr<NsEntry>> namespaces_;
  std::map<std::string, std::shared_ptr<WriterEntry>> writers_;
  std::vector<std::weak_ptr<ReaderEntry>> waiting_;  // readers with a read waiting (may hold stale ones)
  int64_t lib_ops_ = 0;                              // library calls whose results we still expect (opens, closes)

  Mutex admin_mu_;
  CondVar admin_cv_;
  std::deque<AdminJob> admin_queue_ DLOG_GUARDED_BY(admin_mu_);
  bool admin_stop_ DLOG_GUARDED_BY(admin_mu_) = false;
  std::vector<std::thread> admin_threads_;  // owner thread
};

LogService::LogService(net::EventLoop* loop, log::LogClient* client, LogServiceOptions options, LogServiceProbe* probe)
    : impl_(std::make_unique<Impl>(loop, client, std::move(options), probe)) {}

LogService::~LogService() = default;

void LogService::Start() { impl_->Start(); }
void LogService::Stop() { impl_->Stop(); }

void LogService::OnFrame(const net::ConnectionPtr& conn, std::string_view header, Slice payload) {
  impl_->OnFrame(conn, header, std::move(payload));
}
void LogService::OnProtocolError(const net::ConnectionPtr& conn, const Status& error) {
  impl_->OnProtocolError(conn, error);
}
void LogService::OnOpen(const net::ConnectionPtr& conn) { impl_->OnOpen(conn); }
void LogService::OnClose(const net::ConnectionPtr& conn) { impl_->OnClose(conn); }

}  // namespace dlog::server
