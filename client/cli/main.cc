// dlog: the command-line client.
//
//   dlog [--service HOST:PORT | --metadata zk://HOST:PORT/dlog] [--namespace NS] log COMMAND ...
//   dlog produce|consume|topics|subscriptions ... [--service-url dlog://HOST:PORT]   (broker_commands.cc)
//   dlog perf produce|consume|pubsub TOPIC ... [--service-url dlog://HOST:PORT]      (perf.cc)
//
// Every user error is one line on stderr and exit code 1; usage errors exit 2.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/cli/backend.h"
#include "client/cli/broker_commands.h"
#include "client/cli/perf.h"
#include "client/log_wire.h"
#include "common/logging.h"
#include "logstore/log/entry.h"
#include "logstore/log/errors.h"
#include "logstore/segment/segment_meta.h"
#include "net/errors.h"

namespace dlog::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void OnSignal(int) { g_interrupted = 1; }

struct Globals {
  std::string service = "127.0.0.1:4180";
  std::string metadata;
  std::string ns = "default";
};

// One clear line for a failed call about `log_name` (may be empty).
std::string Describe(const Status& st, const std::string& log_name, const std::string& ns) {
  using log::LogErrc;
  if (st.Is(LogErrc::kLogNotFound)) return "log '" + log_name + "' not found in namespace '" + ns + "'";
  if (st.Is(LogErrc::kLogExists)) return "log '" + log_name + "' already exists in namespace '" + ns + "'";
  if (st.Is(LogErrc::kNamespaceNotFound)) return "namespace '" + ns + "' not found";
  if (st.Is(LogErrc::kLocked) && st.message().empty()) return "log '" + log_name + "' is locked by another writer";
  // These messages say what happened; the code name would only add noise.
  if (st.domain() == ErrorDomain::kLog || st.domain() == ErrorDomain::kNet || st.domain() == ErrorDomain::kMetadata ||
      st.Is(CommonErrc::kInvalidArgument) || st.Is(CommonErrc::kUnavailable)) {
    return st.message().empty() ? std::string(st.CodeName()) : st.message();
  }
  return st.ToString();
}

int Fail(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "dlog %s: %s\n", what.c_str(), message.c_str());
  return 1;
}

// stdout failed (e.g. the reader of a pipe went away): stop quietly.
bool StdoutBroken() { return std::ferror(stdout) != 0 || std::fflush(stdout) != 0; }

std::string FormatTime(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Num(int64_t v) { return v < 0 ? "-" : std::to_string(v); }

void PrintStat(const proto::LogStat& s, const std::string& ns) {
  std::printf("log: %s\n", s.name().c_str());
  std::printf("namespace: %s\n", ns.c_str());
  std::printf("records: %s%lld\n", s.record_count_exact() ? "" : "at least ", static_cast<long long>(s.record_count()));
  std::printf("first dlsn: %s\n", s.has_first_dlsn() ? client::FromProto(s.first_dlsn()).ToString().c_str() : "-");
  std::printf("last dlsn: %s\n", s.has_last_dlsn() ? client::FromProto(s.last_dlsn()).ToString().c_str() : "-");
  std::printf("end of stream: %s\n", s.end_of_stream() ? "yes" : "no");
  if (s.owner_id().empty()) {
    std::printf("writer: none\n");
  } else {
    std::printf("writer: %s%s%s since %s\n", s.owner_id().c_str(), s.owner_address().empty() ? "" : " at ",
                s.owner_address().c_str(), FormatTime(s.owner_since_ms()).c_str());
  }
  std::printf("created: %s\n", FormatTime(s.ctime_ms()).c_str());
  std::printf("bytes: %lld (closed, untruncated segments)\n", static_cast<long long>(s.live_bytes()));
  int truncated = 0;
  for (const auto& seg : s.segments()) truncated += seg.truncated() ? 1 : 0;
  std::printf("segments: %d (%d truncated)\n", s.segments_size(), truncated);
  if (s.segments_size() == 0) return;
  std::printf("  %-6s %-10s %-12s %-9s %-9s %-11s %-9s %s\n", "SEQ", "ID", "STATE", "ENTRIES", "RECORDS", "BYTES",
              "TRUNC", "NODES");
  for (const auto& seg : s.segments()) {
    std::string nodes;
    for (const auto& n : seg.ensemble()) nodes += (nodes.empty() ? "" : ",") + n;
    std::printf("  %-6lld %-10llu %-12s %-9s %-9s %-11s %-9s %s\n", static_cast<long long>(seg.seq()),
                static_cast<unsigned long long>(seg.segment_id()), segment::SegmentStateName(seg.state()),
                Num(seg.entries()).c_str(), Num(seg.records()).c_str(), Num(seg.bytes()).c_str(),
                seg.truncated() ? "yes" : "no", nodes.c_str());
  }
}

// Lines from stdin without blocking when a batch could be sent instead.
class LineReader {
 public:
  // A complete line (or the last, unterminated one at EOF), without its '\n'.
  bool TakeLine(std::string* line) {
    const size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      line->assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      return true;
    }
    if (eof_ && pos_ < buf_.size()) {
      line->assign(buf_, pos_, std::string::npos);
      pos_ = buf_.size();
      return true;
    }
    return false;
  }
  size_t partial_bytes() const { return buf_.size() - pos_; }
  bool eof() const { return eof_; }
  // Reads what is there; with `block`, waits for something. False if nothing
  // was ready (non-blocking) or on a read error (then error() is set).
  bool Fill(bool block) {
    if (!block) {
      pollfd p{STDIN_FILENO, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) return false;
    }
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char tmp[64 << 10];
    for (;;) {
      const ssize_t n = ::read(STDIN_FILENO, tmp, sizeof(tmp));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error_ = errno;
        eof_ = true;
        return false;
      }
      if (n == 0) {
        eof_ = true;
        return true;
      }
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }
  int error() const { return error_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int error_ = 0;
};

int CmdWrite(LogBackend* b, const Globals& g, const std::string& log_name, size_t batch_records) {
  const std::string what = "log write " + log_name;
  constexpr size_t kBatchBytes = 1u << 20;
  LineReader in;
  std::vector<std::string> batch;
  size_t batch_bytes = 0;
  int64_t total = 0;
  int64_t line_no = 0;
  std::optional<log::Dlsn> last;
  auto summary = [&] {
    std::printf("wrote %lld records to %s%s%s\n", static_cast<long long>(total), log_name.c_str(),
                last ? ", last DLSN " : "", last ? last->ToString().c_str() : "");
    std::fflush(stdout);
  };
  auto send = [&]() -> Status {
    if (batch.empty()) return Status::OK();
    AppendOutcome out = b->Append(log_name, batch, {});
    total += static_cast<int64_t>(out.written.size());
    if (!out.written.empty()) last = out.written.back().dlsn;
    batch.clear();
    batch_bytes = 0;
    return out.status;
  };
  auto fail_after = [&](const Status& st) {
    summary();
    return Fail(what, Describe(st, log_name, g.ns));
  };
  for (;;) {
    std::string line;
    if (in.TakeLine(&line)) {
      ++line_no;
      if (line.size() > log::kMaxRecordSize) {
        IgnoreError(send());
        summary();
        return Fail(what, "line " + std::to_string(line_no) + " is " + std::to_string(line.size()) +
                              " bytes; a record is at most " + std::to_string(log::kMaxRecordSize) + " bytes");
      }
      batch_bytes += line.size();
      batch.push_back(std::move(line));
      if (batch.size() >= batch_records || batch_bytes >= kBatchBytes) {
        if (Status st = send(); !st.ok()) return fail_after(st);
      }
      continue;
    }
    if (in.eof()) break;
    if (in.partial_bytes() > log::kMaxRecordSize) {
      summary();
      return Fail(what, "line " + std::to_string(line_no + 1) + " is longer than " +
                            std::to_string(log::kMaxRecordSize) + " bytes; a record is at most " +
                            std::to_string(log::kMaxRecordSize) + " bytes");
    }
    // Nothing more ready right now: send what we have, then wait for input.
    if (!batch.empty() && !in.Fill(false) && !in.eof()) {
      if (Status st = send(); !st.ok()) return fail_after(st);
    } else if (batch.empty()) {
      in.Fill(true);
    }
  }
  if (in.error() != 0) {
    IgnoreError(send());
    summary();
    return Fail(what, std::string("reading stdin: ") + std::strerror(in.error()));
  }
  if (Status st = send(); !st.ok()) return fail_after(st);
  if (Status st = b->FinishWrites(); !st.ok()) return fail_after(st);
  summary();
  return 0;
}

int CmdTail(LogBackend* b, const Globals& g, const std::string& log_name, const std::string& from, bool follow,
            int64_t max) {
  const std::string what = "log tail " + log_name;
  auto start = client::ParseStartPosition(from);
  if (!start.ok()) return Fail(what, start.status().message());
  if (max == 0) return 0;
  // Without -f: stop at the end the log has now.
  int64_t end_seq = -1;
  std::optional<log::Dlsn> end_dlsn;
  if (!follow) {
    if (start->kind == log::StartPosition::Kind::kLatest) {
      // Nothing written after "now" exists yet; still say whether the log does.
      auto st = b->Stat(log_name);
      return st.ok() ? 0 : Fail(what, Describe(st.status(), log_name, g.ns));
    }
    auto stat = b->Stat(log_name);
    if (!stat.ok()) return Fail(what, Describe(stat.status(), log_name, g.ns));
    if (stat->record_count_exact()) {
      if (stat->record_count() == 0) return 0;
      end_seq = stat->record_count() - 1;
    }
    if (stat->has_last_dlsn()) end_dlsn = client::FromProto(stat->last_dlsn());
  }
  auto tail = b->OpenTail(log_name, *start);
  if (!tail.ok()) return Fail(what, Describe(tail.status(), log_name, g.ns));
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int64_t printed = 0;
  while (!g_interrupted) {
    const size_t want = max > 0 ? static_cast<size_t>(std::min<int64_t>(1000, max - printed)) : 1000;
    auto recs = (*tail)->Next(want, follow ? 500 : 1000);
    if (!recs.ok()) {
      if (recs.status().Is(log::LogErrc::kEndOfStream)) break;
      return Fail(what, Describe(recs.status(), log_name, g.ns));
    }
    if (recs->empty()) {
      if (!follow) break;  // nothing more arrived: this is the end
      continue;
    }
    bool done = false;
    for (const log::LogRecord& r : *recs) {
      const std::string d = r.dlsn.ToString();
      std::fwrite(d.data(), 1, d.size(), stdout);
      std::fputc('\t', stdout);
      std::fwrite(r.payload.data(), 1, r.payload.size(), stdout);
      std::fputc('\n', stdout);
      ++printed;
      if ((max > 0 && printed >= max) ||
          (!follow && ((end_seq >= 0 && r.seq >= end_seq) || (end_dlsn && r.dlsn >= *end_dlsn)))) {
        done = true;
        break;
      }
    }
    if (StdoutBroken()) return 0;
    if (done) break;
  }
  std::fflush(stdout);
  return 0;
}

int Run(int argc, char** argv) {
  CLI::App app{"dlog: the dlog command-line client"};
  app.fallthrough();  // global options may also follow the subcommands
  app.require_subcommand(1);
  Globals g;
  auto* svc =
      app.add_option("--service", g.service, "Log service of `dlogd standalone` (HOST:PORT)")->capture_default_str();
  auto* meta = app.add_option("--metadata", g.metadata,
                              "Talk to a cluster directly through its metadata: zk://HOST:PORT[,...][/dlog]");
  meta->excludes(svc);
  app.add_option("--namespace", g.ns, "Namespace of the logs")->capture_default_str();

  CLI::App* logs = app.add_subcommand("log", "Log streams: create, list, delete, stat, write, tail, truncate");
  logs->require_subcommand(1);
  std::string log_name, dlsn_text, from = "earliest";
  size_t batch = 1000;
  bool follow = false;
  int64_t max = -1;
  CLI::App* create = logs->add_subcommand("create", "Create a log");
  create->add_option("LOG", log_name, "Log name")->required();
  CLI::App* list = logs->add_subcommand("list", "List the namespace's logs");
  CLI::App* del = logs->add_subcommand("delete", "Delete a log and its data");
  del->add_option("LOG", log_name, "Log name")->required();
  CLI::App* stat = logs->add_subcommand("stat", "Describe a log: records, first/last DLSN, writer, segments");
  stat->add_option("LOG", log_name, "Log name")->required();
  CLI::App* write = logs->add_subcommand("write", "Append stdin to a log, one record per line");
  write->add_option("LOG", log_name, "Log name")->required();
  write->add_option("--batch", batch, "Most records per append request")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  CLI::App* tail = logs->add_subcommand(
      "tail", "Print records as <dlsn>\\t<payload>, from a position up to the current end (or on, with -f)");
  tail->add_option("LOG", log_name, "Log name")->required();
  tail->add_option("--from", from, "Start: earliest, latest, txid:N or a DLSN SEG/ENTRY/SLOT")->capture_default_str();
  tail->add_flag("-f,--follow", follow, "Keep waiting for new records until interrupted");
  tail->add_option("-n,--max", max, "Stop after this many records")->check(CLI::NonNegativeNumber);
  CLI::App* trunc = logs->add_subcommand("truncate", "Drop the segments wholly before a DLSN");
  trunc->add_option("LOG", log_name, "Log name")->required();
  trunc->add_option("DLSN", dlsn_text, "Records before this position may go (SEG/ENTRY/SLOT)")->required();

  BrokerArgs broker_args;
  AddBrokerCommands(&app, &broker_args);
  PerfArgs perf_args;
  AddPerfCommands(&app, &perf_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  // Libraries log to stderr; the CLI prints its own one-line errors.
  if (std::getenv("DLOG_LOG_LEVEL") == nullptr) SetLogLevel(LogLevel::kError);
  if (BrokerCommandParsed(broker_args)) return RunBrokerCommand(broker_args);
  if (PerfCommandParsed(perf_args)) return RunPerfCommand(perf_args);

  std::string what = "log";
  for (CLI::App* c : logs->get_subcommands()) what += " " + c->get_name();
  if (!log_name.empty()) what += " " + log_name;

  // Arguments that need no connection are checked first.
  std::optional<log::Dlsn> dlsn;
  if (trunc->parsed()) {
    auto d = log::Dlsn::Parse(dlsn_text);
    if (!d.ok()) return Fail(what, d.status().message());
    dlsn = *d;
  }
  if (tail->parsed()) {
    if (auto s = client::ParseStartPosition(from); !s.ok()) return Fail(what, s.status().message());
  }

  std::unique_ptr<LogBackend> backend;
  if (!g.metadata.empty()) {
    auto b = MakeDirectBackend(g.metadata, g.ns);
    if (!b.ok()) return Fail(what, Describe(b.status(), log_name, g.ns));
    backend = std::move(b).value();
  } else {
    auto addr = ParseHostPort(g.service);
    if (!addr.ok()) return Fail(what, "--service: " + addr.status().message());
    backend = MakeServiceBackend(*addr, g.ns);
  }

  if (create->parsed()) {
    Status st = backend->CreateLog(log_name);
    if (!st.ok()) return Fail(what, Describe(st, log_name, g.ns));
    std::printf("created log %s\n", log_name.c_str());
    return 0;
  }
  if (del->parsed()) {
    Status st = backend->DeleteLog(log_name);
    if (!st.ok()) return Fail(what, Describe(st, log_name, g.ns));
    std::printf("deleted log %s\n", log_name.c_str());
    return 0;
  }
  if (list->parsed()) {
    auto names = backend->ListLogs();
    if (!names.ok()) return Fail(what, Describe(names.status(), "", g.ns));
    for (const std::string& n : *names) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (stat->parsed()) {
    auto s = backend->Stat(log_name);
    if (!s.ok()) return Fail(what, Describe(s.status(), log_name, g.ns));
    PrintStat(*s, g.ns);
    return 0;
  }
  if (trunc->parsed()) {
    Status st = backend->Truncate(log_name, *dlsn);
    if (!st.ok()) return Fail(what, Describe(st, log_name, g.ns));
    std::printf("truncated log %s before %s\n", log_name.c_str(), dlsn->ToString().c_str());
    return 0;
  }
  if (write->parsed()) return CmdWrite(backend.get(), g, log_name, batch);
  if (tail->parsed()) return CmdTail(backend.get(), g, log_name, from, follow, max);
  return 2;
}

}  // namespace
}  // namespace dlog::cli

int main(int argc, char** argv) { return dlog::cli::Run(argc, argv); }
