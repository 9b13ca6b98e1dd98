#include "client/log_service_client.h"

#include <optional>
#include <vector>

#include "client/log_wire.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "net/errors.h"
#include "net/event_loop.h"
#include "net/rpc_client.h"

namespace dlog::client {

class LogServiceClient::Impl final : public net::RpcClient::Handler {
 public:
  explicit Impl(LogServiceClientOptions options)
      : opts_(std::move(options)), loop_("log-service-client"), rpc_(&loop_, RpcOptions(opts_), this) {
    pending_.resize(rpc_.capacity());
    loop_.Start();
  }

  ~Impl() override { Close(); }

  void Close() {
    if (closed_) return;
    closed_ = true;
    loop_.RunSync([this] { rpc_.Shutdown(Status::Error(net::NetErrc::kClosed, "log service client closed")); });
    loop_.Stop();
  }

  const HostPort& address() const { return opts_.address; }

  void Call(proto::LogRequest request, std::string payload, int64_t timeout_ms, Callback cb, bool keep_errors) {
    std::function<void()> task = [this, request = std::move(request), payload = std::move(payload), timeout_ms,
                                  cb = std::move(cb), keep_errors]() mutable {
      uint64_t id;
      size_t slot;
      if (Status st = rpc_.Reserve(&id, &slot); !st.ok()) {
        cb(Describe(st));
        return;
      }
      request.set_request_id(id);
      if (request.has_read()) timeout_ms += request.read().wait_ms();
      pending_[slot] = Pending{std::move(cb), keep_errors};
      rpc_.Send(id, slot, request, payload, timeout_ms);
    };
    if (!loop_.TryPost(task)) {
      Callback failed = std::move(cb);
      failed(Status::Error(net::NetErrc::kClosed, "log service client closed"));
    }
  }

  // net::RpcClient::Handler (loop thread):
  void OnReplyFrame(std::string_view header, Slice payload) override {
    proto::LogResponse r;
    if (!r.ParseFromArray(header.data(), static_cast<int>(header.size()))) {
      rpc_.DropConnection(Status::Error(net::NetErrc::kProtocolError, "a reply from the log service does not parse"));
      return;
    }
    if (r.request_id() == 0) {
      // A connection-level error; the service closes the connection next.
      last_connection_error_ = r.error_text();
      DLOG_DEBUG << "log service " << opts_.address.ToString() << ": " << r.error_text();
      return;
    }
    size_t slot;
    if (!rpc_.Claim(r.request_id(), &slot)) return;
    Pending p = std::move(pending_[slot]);
    pending_[slot] = Pending{};
    Status st = FromLogWire(r.code(), r.error_text());
    if (!st.ok() && !p.keep_errors) {
      p.cb(st);
      return;
    }
    p.cb(LogServiceReply{std::move(st), std::move(r), std::move(payload)});
  }

  void OnRequestFailed(uint64_t /*id*/, size_t slot, const Status& status) override {
    Pending p = std::move(pending_[slot]);
    pending_[slot] = Pending{};
    if (p.cb) p.cb(Describe(status));
  }

 private:
  struct Pending {
    Callback cb;
    bool keep_errors = false;
  };

  static net::RpcClientOptions RpcOptions(const LogServiceClientOptions& o) {
    net::RpcClientOptions r;
    r.address = o.address;
    r.window = o.window;
    r.connect_timeout_ms = o.connect_timeout_ms;
    r.max_frame_bytes = o.max_frame_bytes;
    return r;
  }

  // Says which service a transport error is about.
  Status Describe(const Status& st) const {
    std::string where = "log service at " + opts_.address.ToString();
    if (st.Is(net::NetErrc::kConnectFailed)) {
      return Status::Error(net::NetErrc::kConnectFailed, "cannot connect to the " + where + " (" + st.message() +
                                                             "); is `dlogd standalone` running?");
    }
    if (st.Is(net::NetErrc::kConnectionLost) && !last_connection_error_.empty()) {
      return Status::Error(net::NetErrc::kConnectionLost,
                           "the " + where + " closed the connection: " + last_connection_error_);
    }
    return st.WithContext(where);
  }

  const LogServiceClientOptions opts_;
  net::EventLoop loop_;
  net::RpcClient rpc_;
  std::vector<Pending> pending_;       // loop thread; indexed like rpc_'s slots
  std::string last_connection_error_;  // loop thread
  bool closed_ = false;                // owner thread
};

LogServiceClient::LogServiceClient(LogServiceClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {}

LogServiceClient::~LogServiceClient() { Close(); }

void LogServiceClient::Call(proto::LogRequest request, std::string payload, int64_t timeout_ms, Callback cb,
                            bool keep_errors) {
  impl_->Call(std::move(request), std::move(payload), timeout_ms, std::move(cb), keep_errors);
}

Result<LogServiceReply> LogServiceClient::CallSync(proto::LogRequest request, std::string payload, int64_t timeout_ms,
                                                   bool keep_errors) {
  struct Waiter {
    Mutex mu;
    CondVar cv;
    std::optional<Result<LogServiceReply>> result DLOG_GUARDED_BY(mu);
  };
  auto w = std::make_shared<Waiter>();
  Call(
      std::move(request), std::move(payload), timeout_ms,
      [w](Result<LogServiceReply> r) {
        MutexLock l(&w->mu);
        w->result.emplace(std::move(r));
        w->cv.SignalAll();
      },
      keep_errors);
  MutexLock l(&w->mu);
  while (!w->result.has_value()) w->cv.Wait(&w->mu);
  return std::move(*w->result);
}

void LogServiceClient::Close() { impl_->Close(); }

const HostPort& LogServiceClient::address() const { return impl_->address(); }

}  // namespace dlog::client
