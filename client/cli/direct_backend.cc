// The CLI's backend straight through the log library (a ZooKeeper cluster).
#include <algorithm>
#include <optional>
#include <utility>

#include "client/cli/backend.h"
#include "client/log_stat.h"
#include "common/thread_annotations.h"
#include "logstore/log/errors.h"
#include "logstore/log/log_client.h"
#include "logstore/log/namespace.h"

namespace dlog::cli {
namespace {

class DirectTail final : public LogTail {
 public:
  explicit DirectTail(std::unique_ptr<log::LogReader> r) : reader_(std::move(r)) {}

  Result<std::vector<log::LogRecord>> Next(size_t max_records, int64_t wait_ms) override {
    auto recs = reader_->ReadNextSync(max_records, wait_ms);
    if (!recs.ok() && recs.status().Is(log::LogErrc::kTimeout)) return std::vector<log::LogRecord>{};
    return recs;
  }

 private:
  std::unique_ptr<log::LogReader> reader_;
};

class DirectBackend final : public LogBackend {
 public:
  DirectBackend(std::unique_ptr<log::LogClient> c, std::unique_ptr<log::Namespace> ns)
      : client_(std::move(c)), ns_(std::move(ns)) {}

  ~DirectBackend() override {
    // Writers and readers go before the namespace, the namespace before the client.
    if (writer_) IgnoreError(writer_->CloseSync());
    writer_.reset();
    ns_.reset();
    // Closing the store first ends what a closed reader left in flight while
    // the segment client it points to still exists (LogClient's destructor
    // would drop the segment client first). Closing twice is fine.
    if (client_) client_->store()->CloseSync();
    client_.reset();
  }

  Status CreateLog(const std::string& log_name) override { return ns_->CreateLogSync(log_name); }
  Status DeleteLog(const std::string& log_name) override { return ns_->DeleteLogSync(log_name); }

  Result<std::vector<std::string>> ListLogs() override {
    auto logs = ns_->ListLogsSync();
    if (logs.ok()) std::sort(logs->begin(), logs->end());
    return logs;
  }

  Result<proto::LogStat> Stat(const std::string& log_name) override {
    return client::StatLogSync(ns_.get(), log_name, std::nullopt);
  }

  Status Truncate(const std::string& log_name, log::Dlsn dlsn) override { return ns_->TruncateSync(log_name, dlsn); }

  AppendOutcome Append(const std::string& log_name, const std::vector<std::string>& records,
                       const std::vector<int64_t>& txids) override {
    AppendOutcome out;
    if (!writer_) {
      auto w = ns_->OpenWriterSync(log_name);
      if (!w.ok()) {
        out.status = w.status();
        return out;
      }
      writer_ = std::move(w).value();
    }
    // Every record is handed to the writer at once (it batches them into
    // entries); callbacks come in write order.
    struct State {
      Mutex mu;
      CondVar cv;
      size_t done DLOG_GUARDED_BY(mu) = 0;
      std::vector<std::optional<Result<log::WriteResult>>> results DLOG_GUARDED_BY(mu);
    };
    auto st = std::make_shared<State>();
    {
      MutexLock l(&st->mu);
      st->results.resize(records.size());
    }
    for (size_t i = 0; i < records.size(); ++i) {
      auto cb = [st, i](Result<log::WriteResult> r) {
        MutexLock l(&st->mu);
        st->results[i].emplace(std::move(r));
        ++st->done;
        st->cv.SignalAll();
      };
      if (txids.empty()) {
        writer_->Write(Slice::CopyOf(records[i]), std::move(cb));
      } else {
        writer_->Write(Slice::CopyOf(records[i]), txids[i], std::move(cb));
      }
    }
    MutexLock l(&st->mu);
    while (st->done < records.size()) st->cv.Wait(&st->mu);
    for (auto& r : st->results) {
      if (!r->ok()) {
        out.status = r->status();
        break;
      }
      out.written.push_back(r->value());
    }
    return out;
  }

  Status FinishWrites() override {
    if (!writer_) return Status::OK();
    Status st = writer_->CloseSync();
    writer_.reset();
    return st;
  }

  Result<std::unique_ptr<LogTail>> OpenTail(const std::string& log_name, log::StartPosition start) override {
    auto r = ns_->OpenReaderSync(log_name, start);
    if (!r.ok()) return r.status();
    return std::unique_ptr<LogTail>(new DirectTail(std::move(r).value()));
  }

 private:
  std::unique_ptr<log::LogClient> client_;
  std::unique_ptr<log::Namespace> ns_;
  std::unique_ptr<log::LogWriter> writer_;
};

}  // namespace

Result<std::unique_ptr<LogBackend>> MakeDirectBackend(const std::string& url, const std::string& ns) {
  log::LogClientOptions o;
  o.metadata_url = url;
  auto c = log::LogClient::Open(o);
  if (!c.ok()) return c.status();
  auto n = log::Namespace::OpenSync((*c)->segments(), ns);
  if (!n.ok()) return n.status();
  return std::unique_ptr<LogBackend>(new DirectBackend(std::move(c).value(), std::move(n).value()));
}

}  // namespace dlog::cli
