// The CLI's backend over the log service (client/log_service_client.h).
#include <utility>

#include "client/cli/backend.h"
#include "client/log_service_client.h"
#include "client/log_wire.h"
#include "common/status.h"

namespace dlog::cli {
namespace {

constexpr int64_t kRequestTimeoutMs = 30000;

class ServiceTail final : public LogTail {
 public:
  ServiceTail(client::LogServiceClient* c, std::string ns, std::string log_name, log::StartPosition start)
      : client_(c), ns_(std::move(ns)), log_(std::move(log_name)), start_(start) {}

  ~ServiceTail() override {
    if (reader_id_ == 0) return;
    // Best effort; the reader closes with the connection anyway.
    proto::LogRequest r;
    r.set_namespace_name(ns_);
    r.mutable_close_reader()->set_reader_id(reader_id_);
    IgnoreError(client_->CallSync(std::move(r), "", 2000));
  }

  Result<std::vector<log::LogRecord>> Next(size_t max_records, int64_t wait_ms) override {
    proto::LogRequest r;
    r.set_namespace_name(ns_);
    proto::ReadRequest* q = r.mutable_read();
    q->set_reader_id(reader_id_);
    if (reader_id_ == 0) {
      q->set_log(log_);
      client::ToProto(start_, q->mutable_start());
    }
    q->set_max_records(static_cast<uint32_t>(max_records));
    q->set_wait_ms(static_cast<uint32_t>(wait_ms));
    auto reply = client_->CallSync(std::move(r), "", kRequestTimeoutMs);
    if (!reply.ok()) {
      reader_id_ = 0;  // the service closed it after the error
      return reply.status();
    }
    const proto::ReadResponse& rr = reply->response.read();
    reader_id_ = rr.reader_id();
    std::vector<log::LogRecord> out;
    out.reserve(static_cast<size_t>(rr.records_size()));
    size_t off = 0;
    const Slice& payload = reply->payload;
    for (const proto::ReadRecordMeta& m : rr.records()) {
      if (off + m.size() > payload.size()) {
        return Status::Error(CommonErrc::kCorruption,
                             "the log service sent a read reply whose record sizes exceed "
                             "its payload");
      }
      out.push_back(log::LogRecord{client::FromProto(m.dlsn()), m.seq(), m.txid(), payload.Sub(off, m.size())});
      off += m.size();
    }
    return out;
  }

 private:
  client::LogServiceClient* const client_;
  const std::string ns_;
  const std::string log_;
  const log::StartPosition start_;
  uint64_t reader_id_ = 0;
};

class ServiceBackend final : public LogBackend {
 public:
  ServiceBackend(const HostPort& address, std::string ns)
      : client_(client::LogServiceClientOptions{address}), ns_(std::move(ns)) {}

  Status CreateLog(const std::string& log_name) override {
    proto::LogRequest r = Request();
    r.mutable_create_log()->set_log(log_name);
    return Call(std::move(r)).status();
  }

  Status DeleteLog(const std::string& log_name) override {
    proto::LogRequest r = Request();
    r.mutable_delete_log()->set_log(log_name);
    return Call(std::move(r)).status();
  }

  Result<std::vector<std::string>> ListLogs() override {
    proto::LogRequest r = Request();
    r.mutable_list_logs();
    auto reply = Call(std::move(r));
    if (!reply.ok()) return reply.status();
    const auto& logs = reply->response.list_logs().logs();
    return std::vector<std::string>(logs.begin(), logs.end());
  }

  Result<proto::LogStat> Stat(const std::string& log_name) override {
    proto::LogRequest r = Request();
    r.mutable_get_log_info()->set_log(log_name);
    auto reply = Call(std::move(r));
    if (!reply.ok()) return reply.status();
    return reply->response.get_log_info().stat();
  }

  Status Truncate(const std::string& log_name, log::Dlsn dlsn) override {
    proto::LogRequest r = Request();
    r.mutable_truncate()->set_log(log_name);
    client::ToProto(dlsn, r.mutable_truncate()->mutable_dlsn());
    return Call(std::move(r)).status();
  }

  AppendOutcome Append(const std::string& log_name, const std::vector<std::string>& records,
                       const std::vector<int64_t>& txids) override {
    proto::LogRequest r = Request();
    proto::AppendRequest* a = r.mutable_append();
    a->set_log(log_name);
    std::string payload;
    for (const std::string& rec : records) {
      a->add_record_sizes(static_cast<uint32_t>(rec.size()));
      payload.append(rec);
    }
    for (int64_t t : txids) a->add_txids(t);
    AppendOutcome out;
    auto reply = client_.CallSync(std::move(r), std::move(payload), kRequestTimeoutMs, /*keep_errors=*/true);
    if (!reply.ok()) {
      out.status = reply.status();
      return out;
    }
    out.status = reply->status;
    for (const proto::AppendedRecord& rec : reply->response.append().records()) {
      out.written.push_back(log::WriteResult{client::FromProto(rec.dlsn()), rec.seq()});
    }
    return out;
  }

  Status FinishWrites() override { return Status::OK(); }

  Result<std::unique_ptr<LogTail>> OpenTail(const std::string& log_name, log::StartPosition start) override {
    return std::unique_ptr<LogTail>(new ServiceTail(&client_, ns_, log_name, start));
  }

 private:
  proto::LogRequest Request() const {
    proto::LogRequest r;
    r.set_namespace_name(ns_);
    return r;
  }
  Result<client::LogServiceReply> Call(proto::LogRequest r) {
    return client_.CallSync(std::move(r), "", kRequestTimeoutMs);
  }

  client::LogServiceClient client_;
  const std::string ns_;
};

}  // namespace

std::unique_ptr<LogBackend> MakeServiceBackend(const HostPort& address, const std::string& ns) {
  return std::make_unique<ServiceBackend>(address, ns);
}

}  // namespace dlog::cli
