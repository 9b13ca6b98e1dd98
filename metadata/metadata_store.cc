#include "metadata/metadata_store.h"

#include <future>
#include <utility>

#include "common/check.h"
#include "net/event_loop.h"

const char* dlog::ErrcTraits<dlog::metadata::MetaErrc>::Name(int code) {
  using dlog::metadata::MetaErrc;
  switch (static_cast<MetaErrc>(code)) {
    case MetaErrc::kNoNode:
      return "NO_NODE";
    case MetaErrc::kNodeExists:
      return "NODE_EXISTS";
    case MetaErrc::kBadVersion:
      return "BAD_VERSION";
    case MetaErrc::kNotEmpty:
      return "NOT_EMPTY";
    case MetaErrc::kConnectionLoss:
      return "CONNECTION_LOSS";
    case MetaErrc::kSessionExpired:
      return "SESSION_EXPIRED";
    case MetaErrc::kClosed:
      return "CLOSED";
    case MetaErrc::kCorruptRecord:
      return "CORRUPT_RECORD";
    case MetaErrc::kUnknownVersion:
      return "UNKNOWN_VERSION";
    case MetaErrc::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case MetaErrc::kIoError:
      return "IO_ERROR";
  }
  return "UNKNOWN";
}

namespace dlog::metadata {

Op Op::Check(std::string path, int32_t version) {
  Op op;
  op.type = Type::kCheck;
  op.path = std::move(path);
  op.version = version;
  return op;
}

Op Op::Create(std::string path, std::string data, CreateMode mode) {
  Op op;
  op.type = Type::kCreate;
  op.path = std::move(path);
  op.data = std::move(data);
  op.mode = mode;
  return op;
}

Op Op::Set(std::string path, std::string data, int32_t version) {
  Op op;
  op.type = Type::kSet;
  op.path = std::move(path);
  op.data = std::move(data);
  op.version = version;
  return op;
}

Op Op::Delete(std::string path, int32_t version) {
  Op op;
  op.type = Type::kDelete;
  op.path = std::move(path);
  op.version = version;
  return op;
}

std::string Op::Describe() const {
  const char* t = "check";
  switch (type) {
    case Type::kCheck:
      t = "check";
      break;
    case Type::kCreate:
      t = "create";
      break;
    case Type::kSet:
      t = "set";
      break;
    case Type::kDelete:
      t = "delete";
      break;
  }
  std::string s = std::string(t) + " " + path;
  if (type != Type::kCreate) s += " v" + std::to_string(version);
  return s;
}

const char* WatchEventName(WatchEventType t) {
  switch (t) {
    case WatchEventType::kCreated:
      return "created";
    case WatchEventType::kDeleted:
      return "deleted";
    case WatchEventType::kDataChanged:
      return "data_changed";
    case WatchEventType::kChildrenChanged:
      return "children_changed";
    case WatchEventType::kSessionExpired:
      return "session_expired";
    case WatchEventType::kClosed:
      return "closed";
  }
  return "unknown";
}

const char* SessionStateName(SessionState s) {
  switch (s) {
    case SessionState::kConnected:
      return "connected";
    case SessionState::kDisconnected:
      return "disconnected";
    case SessionState::kExpired:
      return "expired";
    case SessionState::kClosed:
      return "closed";
  }
  return "unknown";
}

Status ValidatePath(std::string_view path) {
  auto bad = [&](const char* why) {
    return Status::Error(MetaErrc::kInvalidArgument, "bad path '" + std::string(path) + "': " + why);
  };
  if (path.empty() || path[0] != '/') return bad("not absolute");
  if (path == "/") return Status::OK();
  if (path.back() == '/') return bad("trailing '/'");
  if (path.find('\0') != std::string_view::npos) return bad("NUL byte");
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) return bad("empty component");
    if (comp == "." || comp == "..") return bad("'.' or '..' component");
    start = end + 1;
  }
  return Status::OK();
}

std::string ParentPath(std::string_view path) {
  size_t pos = path.rfind('/');
  if (pos == std::string_view::npos || pos == 0) return "/";
  return std::string(path.substr(0, pos));
}

std::string BaseName(std::string_view path) {
  size_t pos = path.rfind('/');
  if (pos == std::string_view::npos) return std::string(path);
  return std::string(path.substr(pos + 1));
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string s(dir);
  if (s.empty() || s.back() != '/') s += '/';
  s += name;
  return s;
}

int64_t SequenceOf(std::string_view name) {
  if (name.size() < static_cast<size_t>(kSequenceDigits)) return -1;
  int64_t v = 0;
  for (size_t i = name.size() - kSequenceDigits; i < name.size(); ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

uint64_t MetadataStore::SubscribeSession(SessionCallback cb) {
  MutexLock l(&session_mu_);
  uint64_t id = next_subscription_++;
  session_subs_.emplace(id, std::move(cb));
  return id;
}

void MetadataStore::UnsubscribeSession(uint64_t id) {
  MutexLock l(&session_mu_);
  session_subs_.erase(id);
}

void MetadataStore::NotifySession(const SessionEvent& ev) {
  std::vector<uint64_t> ids;
  {
    MutexLock l(&session_mu_);
    for (const auto& [id, cb] : session_subs_) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    SessionCallback cb;
    {
      MutexLock l(&session_mu_);
      auto it = session_subs_.find(id);
      if (it == session_subs_.end()) continue;  // unsubscribed by an earlier callback
      cb = it->second;
    }
    cb(ev);
  }
}

namespace {

template <typename T>
Result<T> Await(net::EventLoop* loop, const std::function<void(Callback<T>)>& start) {
  DLOG_CHECK(!loop->InLoopThread()) << "blocking metadata call on the store's own loop";
  auto p = std::make_shared<std::promise<Result<T>>>();
  auto f = p->get_future();
  start([p](Result<T> r) { p->set_value(std::move(r)); });
  return f.get();
}

}  // namespace

Result<NodeData> MetadataStore::GetSync(const std::string& path) {
  return Await<NodeData>(loop_, [&](Callback<NodeData> cb) { Get(path, std::move(cb)); });
}

Result<std::optional<Stat>> MetadataStore::ExistsSync(const std::string& path) {
  return Await<std::optional<Stat>>(loop_, [&](Callback<std::optional<Stat>> cb) { Exists(path, std::move(cb)); });
}

Result<std::vector<std::string>> MetadataStore::GetChildrenSync(const std::string& path) {
  return Await<std::vector<std::string>>(
      loop_, [&](Callback<std::vector<std::string>> cb) { GetChildren(path, std::move(cb)); });
}

Result<std::string> MetadataStore::CreateSync(const std::string& path, const std::string& data, CreateMode mode) {
  return Await<std::string>(loop_, [&](Callback<std::string> cb) { Create(path, data, mode, std::move(cb)); });
}

Result<Stat> MetadataStore::SetSync(const std::string& path, const std::string& data, int32_t version) {
  return Await<Stat>(loop_, [&](Callback<Stat> cb) { Set(path, data, version, std::move(cb)); });
}

Status MetadataStore::DeleteSync(const std::string& path, int32_t version) {
  DLOG_CHECK(!loop_->InLoopThread()) << "blocking metadata call on the store's own loop";
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  Delete(path, version, [p](Status st) { p->set_value(std::move(st)); });
  return f.get();
}

Result<std::vector<OpResult>> MetadataStore::MultiSync(std::vector<Op> ops) {
  return Await<std::vector<OpResult>>(
      loop_, [&](Callback<std::vector<OpResult>> cb) { Multi(std::move(ops), std::move(cb)); });
}

void MetadataStore::CloseSync() {
  DLOG_CHECK(!loop_->InLoopThread()) << "CloseSync on the store's own loop";
  auto p = std::make_shared<std::promise<void>>();
  auto f = p->get_future();
  Close([p] { p->set_value(); });
  f.get();
}

Status MetadataStore::EnsurePathSync(const std::string& path) {
  DLOG_RETURN_IF_ERROR(ValidatePath(path));
  if (path == "/") return Status::OK();
  size_t pos = 0;
  while (true) {
    pos = path.find('/', pos + 1);
    std::string prefix = pos == std::string::npos ? path : path.substr(0, pos);
    auto r = CreateSync(prefix, "", CreateMode::kPersistent);
    if (!r.ok() && !r.status().Is(MetaErrc::kNodeExists)) return r.status();
    if (pos == std::string::npos) return Status::OK();
  }
}

}  // namespace dlog::metadata
