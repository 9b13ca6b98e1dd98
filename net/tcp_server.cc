#include "net/tcp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "net/errors.h"
#include "net/tcp_connection.h"

namespace dlog::net {

// The server is the FrameHandler of its connections: it forwards to the
// user's handler and keeps its connection table in step.
class TcpServer::Impl final : public FrameHandler, public EventLoop::Resource {
 public:
  Impl(EventLoop* loop, ServerOptions options, FrameHandler* handler)
      : loop_(loop), opts_(std::move(options)), user_(handler), budget_(new MemoryBudget(opts_.inbound_budget_bytes)) {
    conn_opts_.max_frame_bytes = opts_.max_frame_bytes;
    conn_opts_.read_chunk_bytes = opts_.read_chunk_bytes;
    conn_opts_.budget = budget_;
    conn_opts_.out_high_water_bytes = opts_.out_high_water_bytes;
    conn_opts_.out_low_water_bytes = std::min(opts_.out_low_water_bytes, opts_.out_high_water_bytes);
    conn_opts_.idle_timeout_ms = opts_.idle_timeout_ms;
  }

  ~Impl() {
    // Slices of inbound chunks may outlive the server (e.g. in a journal
    // queue); their budget must outlive them, so it is leaked in that case.
    if (budget_->used() == 0) {
      delete budget_;
    } else {
      DLOG_WARN << "TcpServer destroyed while " << budget_->used()
                << " inbound bytes are still referenced; keeping their budget";
    }
  }

  Status Start() {
    if (!loop_->IsRunning()) return Status::Error(CommonErrc::kUnavailable, "event loop is not running");
    Status result;
    loop_->RunSync([&] { result = StartOnLoop(); });
    return result;
  }

  void Stop() {
    DLOG_CHECK(!loop_->InLoopThread()) << "TcpServer::Stop must not run on the loop thread";
    loop_->RunSync([&] { CloseAll(); });
    MutexLock l(&mu_);
    while (open_handles_ > 0) {
      if (!loop_->IsRunning()) {
        // The loop stopped under us: it ran every close callback before it ended.
        DLOG_CHECK(open_handles_ == 0) << open_handles_ << " server handles left open by a stopped loop";
      }
      cv_.WaitFor(&mu_, std::chrono::milliseconds(50));
    }
  }

  uint16_t port() const { return port_.load(); }
  size_t connection_count() const { return conn_count_.load(); }
  MemoryBudget* budget() { return budget_; }

  // FrameHandler (loop thread):
  void OnFrame(const ConnectionPtr& conn, std::string_view header, Slice payload) override {
    user_->OnFrame(conn, header, std::move(payload));
  }
  void OnProtocolError(const ConnectionPtr& conn, const Status& error) override { user_->OnProtocolError(conn, error); }
  void OnOpen(const ConnectionPtr& conn) override { user_->OnOpen(conn); }
  void OnClose(const ConnectionPtr& conn) override {
    // Only connections that were opened are reported (a failed accept is not).
    if (static_cast<TcpConnection*>(conn.get())->opened()) user_->OnClose(conn);
    conns_.erase(conn->id());
    conn_count_.store(conns_.size());
    HandleClosed();
  }

  // EventLoop::Resource:
  void OnLoopStop() override { CloseAll(); }

 private:
  Status StartOnLoop() {
    if (listener_ != nullptr || stopped_) return Status::Error(CommonErrc::kAlreadyExists, "server already started");
    sockaddr_in addr;
    int rc = uv_ip4_addr(opts_.listen.host.c_str(), opts_.listen.port, &addr);
    if (rc != 0) {
      return Status::Error(CommonErrc::kInvalidArgument, "bad listen address " + opts_.listen.ToString());
    }
    auto* l = new uv_tcp_t;
    rc = uv_tcp_init(loop_->uv(), l);
    if (rc != 0) {
      delete l;
      return Status::Error(CommonErrc::kIoError, std::string("uv_tcp_init: ") + uv_strerror(rc));
    }
    l->data = this;
    listener_ = l;
    AddHandle();
    loop_->AddResource(this);
    // libuv sets SO_REUSEADDR on bind, so a restarted node rebinds its port at once.
    rc = uv_tcp_bind(l, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(l), 511, &Impl::OnConnection);
    if (rc != 0) {
      CloseListener();
      return Status::Error(CommonErrc::kIoError,
                           "listen on " + opts_.listen.ToString() + ": " + std::string(uv_strerror(rc)));
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // spare descriptor for EMFILE
    sockaddr_storage bound;
    int len = sizeof(bound);
    if (uv_tcp_getsockname(l, reinterpret_cast<sockaddr*>(&bound), &len) == 0 && bound.ss_family == AF_INET) {
      port_.store(ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port));
    }
    DLOG_INFO << "listening on " << opts_.listen.host << ":" << port_.load();
    return Status::OK();
  }

  static void OnConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<Impl*>(server->data);
    if (status < 0) {
      self->OnAcceptError(status);
      return;
    }
    if (self->stopped_) return;
    if (self->accept_paused_) {
      // Leave it pending: libuv stops polling the listener until uv_accept.
      self->pending_accept_ = true;
      self->StartAcceptTimer();
      return;
    }
    self->AcceptPending();
  }

  // libuv first sheds connections it cannot accept with its own spare
  // descriptor; this runs only when that failed. It would call us again at
  // once, in a tight loop, as long as accept fails, so we free our own spare
  // descriptor: the next accept succeeds, and that connection is left pending,
  // which pauses the listener until a timer finds descriptors again.
  void OnAcceptError(int status) {
    accept_errors_++;
    const int64_t now = MonoMillis();
    if (now - last_accept_log_ms_ >= 1000) {
      last_accept_log_ms_ = now;
      DLOG_WARN << "accept on " << opts_.listen.host << ":" << port_.load() << ": " << uv_strerror(status) << " ("
                << accept_errors_ << " accept errors so far); still listening";
    }
    if ((status == UV_EMFILE || status == UV_ENFILE) && reserve_fd_ >= 0) {
      ::close(reserve_fd_);
      reserve_fd_ = -1;
      accept_paused_ = true;
    }
  }

  void StartAcceptTimer() {
    if (accept_timer_ == nullptr) {
      accept_timer_ = new uv_timer_t;
      uv_timer_init(loop_->uv(), accept_timer_);
      accept_timer_->data = this;
      AddHandle();
    }
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(accept_timer_))) return;
    uv_timer_start(
        accept_timer_, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->OnAcceptTimer(); }, kAcceptRetryMs, 0);
  }

  void OnAcceptTimer() {
    if (stopped_ || listener_ == nullptr) return;
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      StartAcceptTimer();  // still out of descriptors: keep the listener paused
      return;
    }
    reserve_fd_ = fd;
    accept_paused_ = false;
    if (pending_accept_) {
      pending_accept_ = false;
      AcceptPending();  // uv_accept resumes polling the listener
    }
  }

  void AcceptPending() {
    auto* server = reinterpret_cast<uv_stream_t*>(listener_);
    if (conns_.size() >= opts_.max_connections) {
      Reject(server);
      return;
    }
    auto conn = TcpConnection::Create(loop_, next_id_++, conn_opts_, this);
    if (!conn) {
      Reject(server);
      return;
    }
    AddHandle();  // released in OnClose
    int rc = uv_accept(server, reinterpret_cast<uv_stream_t*>(conn->tcp()));
    conns_.emplace(conn->id(), conn);
    conn_count_.store(conns_.size());
    if (rc != 0) {
      conn->CloseNow(Status::Error(NetErrc::kConnectionLost, std::string("accept: ") + uv_strerror(rc)));
      return;
    }
    conn->StartAccepted();
  }

  // Accepts and closes at once (beyond max_connections).
  void Reject(uv_stream_t* server) {
    auto* t = new uv_tcp_t;
    if (uv_tcp_init(loop_->uv(), t) != 0) {
      delete t;
      return;
    }
    t->data = this;
    AddHandle();
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(t)) == 0) {
      rejected_++;
      const int64_t now = MonoMillis();
      if (now - last_reject_log_ms_ >= 1000) {
        last_reject_log_ms_ = now;
        DLOG_WARN << "connection limit of " << opts_.max_connections << " reached; refused " << rejected_
                  << " connections so far";
      }
    }
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) {
      auto* s = static_cast<Impl*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
      s->HandleClosed();
    });
  }

  void CloseListener() {
    if (listener_ == nullptr) return;
    uv_tcp_t* l = std::exchange(listener_, nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(l), [](uv_handle_t* h) {
      auto* s = static_cast<Impl*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
      s->HandleClosed();
    });
  }

  void CloseAll() {
    stopped_ = true;
    loop_->RemoveResource(this);
    CloseListener();  // also closes a connection left pending
    if (accept_timer_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(accept_timer_, nullptr)), [](uv_handle_t* h) {
        auto* s = static_cast<Impl*>(h->data);
        delete reinterpret_cast<uv_timer_t*>(h);
        s->HandleClosed();
      });
    }
    if (reserve_fd_ >= 0) {
      ::close(reserve_fd_);
      reserve_fd_ = -1;
    }
    // CloseNow erases nothing synchronously (OnClose runs from the close callback).
    for (auto& [id, conn] : conns_) conn->CloseNow(Status::Error(NetErrc::kClosed, "server stopping"));
  }

  void AddHandle() {
    MutexLock l(&mu_);
    ++open_handles_;
  }
  void HandleClosed() {
    MutexLock l(&mu_);
    --open_handles_;
    if (open_handles_ == 0) cv_.SignalAll();
  }

  EventLoop* const loop_;
  const ServerOptions opts_;
  FrameHandler* const user_;
  MemoryBudget* const budget_;
  ConnectionOptions conn_opts_;
  std::atomic<uint16_t> port_{0};
  std::atomic<size_t> conn_count_{0};

  // Loop thread only.
  uv_tcp_t* listener_ = nullptr;
  bool stopped_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<TcpConnection>> conns_;
  static constexpr uint64_t kAcceptRetryMs = 100;
  uv_timer_t* accept_timer_ = nullptr;
  int reserve_fd_ = -1;
  bool accept_paused_ = false;
  bool pending_accept_ = false;
  uint64_t accept_errors_ = 0;
  uint64_t rejected_ = 0;
  int64_t last_accept_log_ms_ = -1000000;
  int64_t last_reject_log_ms_ = -1000000;

  Mutex mu_;
  CondVar cv_;
  int open_handles_ DLOG_GUARDED_BY(mu_) = 0;
};

TcpServer::TcpServer(EventLoop* loop, ServerOptions options, FrameHandler* handler)
    : impl_(std::make_unique<Impl>(loop, std::move(options), handler)) {}

TcpServer::~TcpServer() {
  // Stop() is required; calling it here keeps a forgetful owner safe.
  Stop();
}

Status TcpServer::Start() { return impl_->Start(); }
void TcpServer::Stop() { impl_->Stop(); }
uint16_t TcpServer::port() const { return impl_->port(); }
size_t TcpServer::connection_count() const { return impl_->connection_count(); }
MemoryBudget* TcpServer::inbound_budget() { return impl_->budget(); }

}  // namespace dlog::net
