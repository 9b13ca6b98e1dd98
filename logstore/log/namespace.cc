#include "logstore/log/namespace.h"

#include <algorithm>
#include <future>
#include <random>

#include "common/check.h"
#include "common/clock.h"
#include "common/logging.h"
#include "logstore/log/log_meta.h"
#include "metadata/records.h"

namespace dlog::log {

using metadata::CreateMode;
using metadata::MetaErrc;
using metadata::Op;

namespace {

template <typename T>
T Await(const std::function<void(std::function<void(T)>)>& start, segment::SegmentClient* client) {
  DLOG_CHECK(!client->loop()->InLoopThread()) << "blocking log call on the loop";
  std::promise<T> p;
  start([&p](T v) { p.set_value(std::move(v)); });
  return p.get_future().get();
}

uint64_t RandomIncarnation() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(MonoNanos());
}

}  // namespace

// ---- settings and names ----

proto::NamespaceMetadata NamespaceSettings::ToProto() const {
  proto::NamespaceMetadata m;
  m.set_ensemble_size(static_cast<uint32_t>(ensemble_size));
  m.set_write_quorum(static_cast<uint32_t>(write_quorum));
  m.set_ack_quorum(static_cast<uint32_t>(ack_quorum));
  m.set_roll_bytes(roll_bytes);
  m.set_roll_ms(roll_ms);
  m.set_roll_entries(roll_entries);
  m.set_retention_ms(retention_ms);
  m.set_retention_bytes(retention_bytes);
  m.set_truncation_grace_ms(truncation_grace_ms);
  return m;
}

NamespaceSettings NamespaceSettings::FromProto(const proto::NamespaceMetadata& m) {
  NamespaceSettings s;
  s.ensemble_size = static_cast<int>(m.ensemble_size());
  s.write_quorum = static_cast<int>(m.write_quorum());
  s.ack_quorum = static_cast<int>(m.ack_quorum());
  s.roll_bytes = m.roll_bytes();
  s.roll_ms = m.roll_ms();
  s.roll_entries = m.roll_entries();
  s.retention_ms = m.retention_ms();
  s.retention_bytes = m.retention_bytes();
  s.truncation_grace_ms = m.truncation_grace_ms();
  return s;
}

Status NamespaceSettings::Validate() const {
  if (!(ensemble_size >= write_quorum && write_quorum >= ack_quorum && ack_quorum >= 1 && ensemble_size <= 32)) {
    return Status::Error(LogErrc::kInvalidArgument,
                         "need 32 >= E >= Qw >= Qa >= 1; got E=" + std::to_string(ensemble_size) +
                             " Qw=" + std::to_string(write_quorum) + " Qa=" + std::to_string(ack_quorum));
  }
  if (roll_bytes < 0 || roll_ms < 0 || roll_entries < 0 || retention_ms < 0 || retention_bytes < 0 ||
      truncation_grace_ms < 0) {
    return Status::Error(LogErrc::kInvalidArgument, "rolling and retention settings must not be negative");
  }
  return Status::OK();
}

Status ValidateLogName(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Status::Error(LogErrc::kInvalidArgument, "bad name '" + std::string(name) + "': " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 255) return bad("longer than 255 bytes");
  if (name[0] == '.') return bad("starts with '.'");
  if (name == "lock") return bad("reserved");
  for (char c : name) {
    if (c <= ' ' || c > '~') return bad("only printable ASCII without spaces is allowed");
  }
  return Status::OK();
}

// ---- Namespace ----

namespace {
// Posts cb(error) and returns true if `log` is not a valid name.
template <typename Cb>
bool RejectBadName(segment::SegmentClient* client, const std::string& log, Cb& cb) {
  Status st = ValidateLogName(log);
  if (st.ok()) return false;
  client->loop()->Post([cb, st] { cb(st); });
  return true;
}
}  // namespace

class Namespace::Impl {
 public:
  explicit Impl(NsRef ctx) : ctx_(std::move(ctx)) {}
  NsRef ctx_;
  segment::SegmentClient* client() const { return ctx_->client; }
  metadata::MetadataStore* store() const { return ctx_->client->store(); }
  LogPaths Paths(const std::string& log) const { return LogPaths::Of(client()->layout(), ctx_->ns, log); }
};

Namespace::Namespace(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Namespace::~Namespace() = default;

const std::string& Namespace::name() const { return impl_->ctx_->ns; }
const NamespaceSettings& Namespace::settings() const { return impl_->ctx_->settings; }
segment::SegmentClient* Namespace::client() const { return impl_->client(); }

void Namespace::Open(segment::SegmentClient* client, std::string name,
                     std::function<void(Result<std::unique_ptr<Namespace>>)> cb) {
  if (Status st = ValidateLogName(name); !st.ok()) {
    client->loop()->Post([cb, st] { cb(st); });
    return;
  }
  const std::string path = client->layout().Namespace(name);
  client->store()->Get(path, [client, name, path, cb](Result<metadata::NodeData> r) {
    if (!r.ok()) {
      if (r.status().Is(MetaErrc::kNoNode)) {
        return cb(Status::Error(LogErrc::kNamespaceNotFound, "namespace '" + name + "' does not exist"));
      }
      return cb(r.status());
    }
    Result<proto::NamespaceMetadata> m = metadata::Decode<proto::NamespaceMetadata>(path, r->data);
    if (!m.ok()) return cb(m.status());
    auto ctx = std::make_shared<NamespaceContext>(NamespaceContext{client, name, NamespaceSettings::FromProto(*m)});
    cb(std::unique_ptr<Namespace>(new Namespace(std::make_shared<Impl>(std::move(ctx)))));
  });
}

Result<std::unique_ptr<Namespace>> Namespace::OpenSync(segment::SegmentClient* client, std::string name) {
  return Await<Result<std::unique_ptr<Namespace>>>([&](auto done) { Open(client, name, std::move(done)); }, client);
}

Result<std::unique_ptr<Namespace>> Namespace::CreateSync(segment::SegmentClient* client, std::string name,
                                                         const NamespaceSettings& settings) {
  if (Status st = ValidateLogName(name); !st.ok()) return st;
  if (Status st = settings.Validate(); !st.ok()) return st;
  proto::NamespaceMetadata m = settings.ToProto();
  m.set_ctime_ms(WallMillis());
  const std::string path = client->layout().Namespace(name);
  Result<std::string> r = client->store()->CreateSync(path, metadata::Encode(m));
  if (!r.ok() && !r.status().Is(MetaErrc::kNodeExists)) return r.status();
  Result<std::unique_ptr<Namespace>> ns = OpenSync(client, name);
  if (!ns.ok() || r.ok()) return ns;
  proto::NamespaceMetadata have = (*ns)->settings().ToProto();
  if (have.SerializeAsString() != settings.ToProto().SerializeAsString()) {
    return Status::Error(LogErrc::kNamespaceExists, "namespace '" + name + "' exists with other settings");
  }
  return ns;
}

Result<std::unique_ptr<Namespace>> Namespace::OpenOrCreateSync(segment::SegmentClient* client, std::string name,
                                                               const NamespaceSettings& settings) {
  Result<std::unique_ptr<Namespace>> ns = OpenSync(client, name);
  if (ns.ok() || !ns.status().Is(LogErrc::kNamespaceNotFound)) return ns;
  ns = CreateSync(client, name, settings);
  if (!ns.ok() && ns.status().Is(LogErrc::kNamespaceExists)) return OpenSync(client, name);  // a racing creator
  return ns;
}

Result<std::vector<std::string>> Namespace::ListNamespacesSync(segment::SegmentClient* client) {
  Result<std::vector<std::string>> r = client->store()->GetChildrenSync(client->layout().NamespacesDir());
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  for (const auto& c : *r) {
    Result<std::string> n = metadata::UnescapeName(c);
    if (n.ok()) out.push_back(*n);
  }
  return out;
}

void Namespace::CreateLog(std::string log, std::function<void(Status)> cb) {
  segment::SegmentClient* client = impl_->client();
  if (RejectBadName(client, log, cb)) return;
  LogPaths p = impl_->Paths(log);
  proto::LogMetadata m;
  m.set_incarnation(RandomIncarnation());
  m.set_next_segment_seq(1);
  m.set_truncated_before_seq(0);
  m.set_ctime_ms(WallMillis());
  m.set_name(log);
  std::vector<Op> ops{Op::Create(p.path, metadata::Encode(m)), Op::Create(p.lock_dir, "")};
  const std::string ns_path = client->layout().Namespace(impl_->ctx_->ns);
  impl_->store()->Multi(
      std::move(ops), [store = impl_->store(), p, ns_path, cb](Result<std::vector<metadata::OpResult>> r) {
        if (r.ok()) return cb(Status::OK());
        if (r.status().Is(MetaErrc::kNodeExists)) {
          return cb(Status::Error(LogErrc::kLogExists, p.Describe() + " already exists"));
        }
        if (r.status().Is(MetaErrc::kNoNode)) {
          return cb(Status::Error(LogErrc::kNamespaceNotFound, "namespace '" + p.ns + "' does not exist"));
        }
        cb(r.status());
      });
}

Status Namespace::CreateLogSync(const std::string& log) {
  return Await<Status>([&](auto done) { CreateLog(log, std::move(done)); }, impl_->client());
}

void Namespace::DeleteLog(std::string log, std::function<void(Status)> cb) {
  if (RejectBadName(impl_->client(), log, cb)) return;
  segment::SegmentClient* client = impl_->client();
  LogPaths p = impl_->Paths(log);
  metadata::MetadataStore* store = impl_->store();
  store->GetChildren(p.lock_dir, [client, store, p, cb](Result<std::vector<std::string>> locks) {
    if (!locks.ok()) return cb(MapLogError(locks.status(), p));
    if (!locks->empty()) {
      return cb(Status::Error(LogErrc::kLocked, p.Describe() + " has a writer (lock " + locks->front() +
                                                    "); close it before deleting the log"));
    }
    LoadLog(store, p, [client, store, p, cb](Result<VersionedLog> lg) {
      if (!lg.ok()) return cb(lg.status());
      std::vector<proto::LogSegmentRef> refs(lg->meta.segments().begin(), lg->meta.segments().end());
      LoadSegments(client, refs, /*skip_missing=*/true,
                   [client, store, p, version = lg->version, cb](Result<std::vector<segment::VersionedMeta>> segs) {
                     if (!segs.ok()) return cb(segs.status());
                     std::vector<Op> ops;
                     std::vector<proto::SegmentMetadata> metas;
                     for (auto& s : *segs) {
                       ops.push_back(Op::Delete(client->layout().Segment(SegmentId(s.meta.segment_id())), s.version));
                       metas.push_back(s.meta);
                     }
                     ops.push_back(Op::Delete(p.lock_dir, metadata::kAnyVersion));
                     ops.push_back(Op::Delete(p.path, version));
                     store->Multi(std::move(ops), [client, p, metas, cb](Result<std::vector<metadata::OpResult>> r) {
                       if (!r.ok()) {
                         if (r.status().Is(MetaErrc::kNotEmpty)) {
                           return cb(Status::Error(LogErrc::kLocked, p.Describe() + " got a writer meanwhile"));
                         }
                         if (r.status().Is(MetaErrc::kBadVersion) || r.status().Is(MetaErrc::kNoNode)) {
                           return cb(r.status().WithContext(p.Describe() + " changed while being deleted; retry"));
                         }
                         return cb(r.status());
                       }
                       DLOG_INFO << "deleted " << p.Describe() << " (" << metas.size() << " segments)";
                       DeleteSegmentData(client, metas, [cb] { cb(Status::OK()); });
                     });
                   });
    });
  });
}

Status Namespace::DeleteLogSync(const std::string& log) {
  return Await<Status>([&](auto done) { DeleteLog(log, std::move(done)); }, impl_->client());
}

void Namespace::ListLogs(std::function<void(Result<std::vector<std::string>>)> cb) {
  const std::string ns = impl_->ctx_->ns;
  impl_->store()->GetChildren(impl_->client()->layout().Namespace(ns), [ns, cb](Result<std::vector<std::string>> r) {
    if (!r.ok()) {
      if (r.status().Is(MetaErrc::kNoNode)) {
        return cb(Status::Error(LogErrc::kNamespaceNotFound, "namespace '" + ns + "' does not exist"));
      }
      return cb(r.status());
    }
    std::vector<std::string> out;
    out.reserve(r->size());
    for (const auto& c : *r) {
      Result<std::string> n = metadata::UnescapeName(c);
      if (n.ok()) out.push_back(std::move(*n));
    }
    std::sort(out.begin(), out.end());
    cb(std::move(out));
  });
}

Result<std::vector<std::string>> Namespace::ListLogsSync() {
  return Await<Result<std::vector<std::string>>>([&](auto done) { ListLogs(std::move(done)); }, impl_->client());
}

void Namespace::GetLogInfo(std::string log, std::function<void(Result<LogInfo>)> cb) {
  if (RejectBadName(impl_->client(), log, cb)) return;
  segment::SegmentClient* client = impl_->client();
  LogPaths p = impl_->Paths(log);
  metadata::MetadataStore* store = impl_->store();
  LoadLog(store, p, [client, store, p, cb](Result<VersionedLog> lg) {
    if (!lg.ok()) return cb(lg.status());
    auto info = std::make_shared<LogInfo>();
    info->name = p.name;
    info->meta = lg->meta;
    info->version = lg->version;
    std::vector<proto::LogSegmentRef> refs(lg->meta.segments().begin(), lg->meta.segments().end());
    LoadSegments(client, refs, true, [store, p, info, refs, cb](Result<std::vector<segment::VersionedMeta>> s) {
      if (!s.ok()) return cb(s.status());
      for (auto& v : *s) {
        SegmentInfo si;
        si.id = SegmentId(v.meta.segment_id());
        si.seq = v.meta.segment_seq();
        si.meta = v.meta;
        for (const auto& r : refs) {
          if (r.segment_id() == v.meta.segment_id()) si.truncated_at_ms = r.truncated_at_ms();
        }
        info->segments.push_back(std::move(si));
      }
      store->GetChildren(p.lock_dir, [store, p, info, cb](Result<std::vector<std::string>> locks) {
        if (!locks.ok() || locks->empty()) return cb(std::move(*info));
        std::vector<std::string> names = *locks;
        std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
          return metadata::SequenceOf(a) < metadata::SequenceOf(b);
        });
        const std::string path = p.lock_dir + "/" + names.front();
        store->Get(path, [path, info, cb](Result<metadata::NodeData> d) {
          if (d.ok()) {
            Result<proto::OwnerRecord> o = metadata::Decode<proto::OwnerRecord>(path, d->data);
            if (o.ok()) info->owner = std::move(*o);
          }
          cb(std::move(*info));
        });
      });
    });
  });
}

Result<LogInfo> Namespace::GetLogInfoSync(const std::string& log) {
  return Await<Result<LogInfo>>([&](auto done) { GetLogInfo(log, std::move(done)); }, impl_->client());
}

void Namespace::OpenWriter(std::string log, WriterOptions options,
                           std::function<void(Result<std::unique_ptr<LogWriter>>)> cb) {
  OpenLogWriter(impl_->ctx_, std::move(log), std::move(options), std::move(cb));
}

Result<std::unique_ptr<LogWriter>> Namespace::OpenWriterSync(const std::string& log, WriterOptions options) {
  return Await<Result<std::unique_ptr<LogWriter>>>([&](auto done) { OpenWriter(log, options, std::move(done)); },
                                                   impl_->client());
}

void Namespace::OpenReader(std::string log, StartPosition start, ReaderOptions options,
                           std::function<void(Result<std::unique_ptr<LogReader>>)> cb) {
  OpenLogReader(impl_->ctx_, std::move(log), start, options, std::move(cb));
}

Result<std::unique_ptr<LogReader>> Namespace::OpenReaderSync(const std::string& log, StartPosition start,
                                                             ReaderOptions options) {
  return Await<Result<std::unique_ptr<LogReader>>>([&](auto done) { OpenReader(log, start, options, std::move(done)); },
                                                   impl_->client());
}

// ---- truncation and retention ----

namespace {

// Marks refs[i] (CLOSED, not the last segment) truncated where `pick` says so,
// CASes the log, calls back. Conflicts re-read and start over (bounded).
void MarkTruncated(
    NsRef ns, LogPaths p,
    std::function<std::vector<bool>(const proto::LogMetadata&, const std::vector<segment::VersionedMeta>&)> pick,
    int attempts, std::function<void(Status)> cb) {
  segment::SegmentClient* client = ns->client;
  LoadLog(client->store(), p, [ns, p, pick, attempts, cb, client](Result<VersionedLog> lg) {
    if (!lg.ok()) return cb(lg.status());
    std::vector<proto::LogSegmentRef> refs(lg->meta.segments().begin(), lg->meta.segments().end());
    LoadSegments(client, refs, true,
                 [ns, p, pick, attempts, cb, client, lg = *lg](Result<std::vector<segment::VersionedMeta>> segs) {
                   if (!segs.ok()) return cb(segs.status());
                   std::vector<bool> mark = pick(lg.meta, *segs);
                   proto::LogMetadata next = lg.meta;
                   bool changed = false;
                   const int64_t now = WallMillis();
                   for (size_t i = 0; i < segs->size(); ++i) {
                     if (!mark[i]) continue;
                     for (auto& r : *next.mutable_segments()) {
                       if (r.segment_id() == (*segs)[i].meta.segment_id() && r.truncated_at_ms() == 0) {
                         r.set_truncated_at_ms(now);
                         changed = true;
                       }
                     }
                   }
                   // truncated_before_seq: the first segment not marked.
                   int64_t before = next.next_segment_seq();
                   for (const auto& r : next.segments()) {
                     if (r.truncated_at_ms() == 0) {
                       before = r.segment_seq();
                       break;
                     }
                   }
                   if (before > next.truncated_before_seq()) {
                     next.set_truncated_before_seq(before);
                     changed = true;
                   }
                   if (!changed) return cb(Status::OK());
                   client->store()->Set(p.path, metadata::Encode(next), lg.version,
                                        [ns, p, pick, attempts, cb](Result<metadata::Stat> r) {
                                          if (r.ok()) return cb(Status::OK());
                                          if (r.status().Is(MetaErrc::kBadVersion) && attempts < 20) {
                                            return MarkTruncated(ns, p, pick, attempts + 1, cb);
                                          }
                                          cb(MapLogError(r.status(), p));
                                        });
                 });
  });
}

// Deletes the metadata of segments marked truncated at least grace ago (one
// Multi: the log's list and the segment records), then their data on the nodes.
void DeleteExpired(NsRef ns, LogPaths p, int attempts, std::function<void(Status)> cb) {
  segment::SegmentClient* client = ns->client;
  LoadLog(client->store(), p, [ns, p, attempts, cb, client](Result<VersionedLog> lg) {
    if (!lg.ok()) return cb(lg.status());
    const int64_t now = WallMillis();
    std::vector<proto::LogSegmentRef> expired;
    proto::LogMetadata next = lg->meta;
    next.clear_segments();
    for (const auto& r : lg->meta.segments()) {
      if (r.truncated_at_ms() != 0 && now - r.truncated_at_ms() >= ns->settings.truncation_grace_ms) {
        expired.push_back(r);
      } else {
        *next.add_segments() = r;
      }
    }
    if (expired.empty()) return cb(Status::OK());
    LoadSegments(
        client, expired, true,
        [ns, p, attempts, cb, client, next, version = lg->version](Result<std::vector<segment::VersionedMeta>> segs) {
          if (!segs.ok()) return cb(segs.status());
          std::vector<Op> ops{Op::Set(p.path, metadata::Encode(next), version)};
          std::vector<proto::SegmentMetadata> metas;
          for (auto& s : *segs) {
            ops.push_back(Op::Delete(client->layout().Segment(SegmentId(s.meta.segment_id())), metadata::kAnyVersion));
            metas.push_back(s.meta);
          }
          client->store()->Multi(std::move(ops),
                                 [ns, p, attempts, cb, client, metas](Result<std::vector<metadata::OpResult>> r) {
                                   if (!r.ok()) {
                                     if (r.status().Is(MetaErrc::kBadVersion) && attempts < 20) {
                                       return DeleteExpired(ns, p, attempts + 1, cb);
                                     }
                                     return cb(MapLogError(r.status(), p));
                                   }
                                   DLOG_INFO << p.Describe() << ": deleted " << metas.size() << " truncated segment(s)";
                                   DeleteSegmentData(client, metas, [cb] { cb(Status::OK()); });
                                 });
        });
  });
}

}  // namespace

void SweepLog(NsRef ns, LogPaths p, std::function<void(Status)> cb) {
  const NamespaceSettings& s = ns->settings;
  auto retention = [s](const proto::LogMetadata& log, const std::vector<segment::VersionedMeta>& segs) {
    std::vector<bool> mark(segs.size(), false);
    if (s.retention_ms <= 0 && s.retention_bytes <= 0) return mark;
    const int64_t now = WallMillis();
    // Never the last listed segment (the one being written, or the newest).
    const size_t n = segs.size();
    if (n < 2) return mark;
    int64_t live_bytes = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (segs[i].meta.state() == proto::SEGMENT_CLOSED) live_bytes += static_cast<int64_t>(segs[i].meta.length());
    }
    for (size_t i = 0; i + 1 < n; ++i) {
      const auto& m = segs[i].meta;
      if (m.state() != proto::SEGMENT_CLOSED) break;  // only a closed prefix
      bool old = false;
      // Every record of segment i was written before segment i+1 was created.
      if (s.retention_ms > 0 && now - segs[i + 1].meta.ctime_ms() > s.retention_ms) old = true;
      if (s.retention_bytes > 0 && live_bytes > s.retention_bytes) old = true;
      if (!old) break;
      mark[i] = true;
      live_bytes -= static_cast<int64_t>(m.length());
    }
    (void)log;
    return mark;
  };
  MarkTruncated(ns, p, retention, 0, [ns, p, cb](Status st) {
    if (!st.ok()) return cb(st);
    DeleteExpired(ns, p, 0, cb);
  });
}

void Namespace::Truncate(std::string log, Dlsn dlsn, std::function<void(Status)> cb) {
  if (RejectBadName(impl_->client(), log, cb)) return;
  NsRef ns = impl_->ctx_;
  LogPaths p = impl_->Paths(log);
  auto before = [dlsn](const proto::LogMetadata&, const std::vector<segment::VersionedMeta>& segs) {
    std::vector<bool> mark(segs.size(), false);
    for (size_t i = 0; i + 1 < segs.size(); ++i) {
      const auto& m = segs[i].meta;
      if (m.segment_seq() >= dlsn.segment_seq || m.state() != proto::SEGMENT_CLOSED) break;
      mark[i] = true;
    }
    return mark;
  };
  MarkTruncated(ns, p, before, 0, [ns, p, cb](Status st) {
    if (!st.ok()) return cb(st);
    DeleteExpired(ns, p, 0, cb);
  });
}

Status Namespace::TruncateSync(const std::string& log, Dlsn dlsn) {
  return Await<Status>([&](auto done) { Truncate(log, dlsn, std::move(done)); }, impl_->client());
}

void Namespace::Sweep(std::string log, std::function<void(Status)> cb) {
  if (RejectBadName(impl_->client(), log, cb)) return;
  SweepLog(impl_->ctx_, impl_->Paths(log), std::move(cb));
}

Status Namespace::SweepSync(const std::string& log) {
  return Await<Status>([&](auto done) { Sweep(log, std::move(done)); }, impl_->client());
}

}  // namespace dlog::log
