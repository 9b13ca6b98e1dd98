// log_test_writer: a writer process for the log fault tests.
//
//   log_test_writer --metadata zk://127.0.0.1:PORT/dlog --cluster seg --namespace NS --log LOG --tag A
//                   [--session-timeout-ms 2000] [--lock-timeout-ms 30000] [--window 16]
//                   [--count 0] [--interval-us 1000] [--node-timeout-ms 2000]
//
// Opens a writer (waiting up to --lock-timeout-ms for the lock) and writes
// records "<tag>-<i>" for i = 0.. (--count records, or until a write fails or
// SIGTERM when 0), keeping --window in flight. One line per event on stdout,
// flushed at once:
//
//   OPEN <next_seq>               the writer holds the lock
//   SEND <payload>                before the write is handed to the writer
//   ACK <payload> <dlsn> <seq>    acknowledged (durable)
//   UNKNOWN <payload> <status>    outcome unknown (fenced, lock lost, ...)
//   FAIL <payload> <status>       refused: not written
//   CLOSED <status>               after Close (count reached or SIGTERM)
//   DONE acked=N unknown=M failed=K
//   ERROR <what>                  could not start (exit 2)
//
// After the first UNKNOWN/FAIL it stops sending and exits once every write
// has called back.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <semaphore>
#include <string>
#include <thread>

#include "common/thread_annotations.h"
#include "logstore/log/errors.h"
#include "logstore/log/log_client.h"
#include "logstore/log/namespace.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

dlog::Mutex g_out_mu;
void Line(const std::string& s) {
  dlog::MutexLock l(&g_out_mu);
  std::fputs(s.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

[[noreturn]] void Die(const std::string& what) {
  Line("ERROR " + what);
  std::_Exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags = {{"metadata", ""},
                                              {"cluster", "seg"},
                                              {"namespace", ""},
                                              {"log", ""},
                                              {"tag", "W"},
                                              {"session-timeout-ms", "2000"},
                                              {"lock-timeout-ms", "30000"},
                                              {"window", "16"},
                                              {"count", "0"},
                                              {"interval-us", "1000"},
                                              {"node-timeout-ms", "2000"}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) Die("bad argument " + a);
    std::string k = a.substr(2);
    if (!flags.count(k)) Die("unknown flag " + a);
    flags[k] = argv[++i];
  }
  for (const char* required : {"metadata", "namespace", "log"}) {
    if (flags[required].empty()) Die(std::string("--") + required + " is required");
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  const std::string tag = flags["tag"];
  const int64_t count = std::atoll(flags["count"].c_str());
  const int window = std::max(1, std::atoi(flags["window"].c_str()));
  const int64_t interval_us = std::atoll(flags["interval-us"].c_str());

  dlog::log::LogClientOptions o;
  o.metadata_url = flags["metadata"];
  o.cluster = flags["cluster"];
  o.session_timeout = std::chrono::milliseconds(std::atoll(flags["session-timeout-ms"].c_str()));
  o.segment.node_request_timeout_ms = std::atoll(flags["node-timeout-ms"].c_str());
  auto client = dlog::log::LogClient::Open(o);
  if (!client.ok()) Die("client: " + client.status().ToString());
  auto ns = dlog::log::Namespace::OpenSync((*client)->segments(), flags["namespace"]);
  if (!ns.ok()) Die("namespace: " + ns.status().ToString());
  dlog::log::WriterOptions wo;
  wo.owner_id = "log_test_writer-" + tag;
  wo.lock_timeout_ms = std::atoll(flags["lock-timeout-ms"].c_str());
  auto writer = (*ns)->OpenWriterSync(flags["log"], wo);
  if (!writer.ok()) Die("open writer: " + writer.status().ToString());
  dlog::log::LogWriter* w = writer->get();
  Line("OPEN " + std::to_string(w->next_seq()));

  std::counting_semaphore<1 << 16> permits(window);
  std::atomic<bool> failed{false};
  std::atomic<int64_t> acked{0}, unknown{0}, refused{0};
  for (int64_t i = 0; count == 0 || i < count; ++i) {
    // Wait for a permit, checking for a stop now and then.
    bool got = false;
    while (!got && !g_stop.load() && !failed.load()) got = permits.try_acquire_for(std::chrono::milliseconds(50));
    if (!got) break;
    if (g_stop.load() || failed.load()) {
      permits.release();
      break;
    }
    const std::string payload = tag + "-" + std::to_string(i);
    Line("SEND " + payload);
    w->Write(dlog::Slice::CopyOf(payload), [&, payload](dlog::Result<dlog::log::WriteResult> r) {
      if (r.ok()) {
        ++acked;
        Line("ACK " + payload + " " + r->dlsn.ToString() + " " + std::to_string(r->seq));
      } else {
        const dlog::Status& st = r.status();
        using dlog::log::LogErrc;
        if (st.Is(LogErrc::kFenced) || st.Is(LogErrc::kLockLost) || st.Is(LogErrc::kOutcomeUnknown)) {
          ++unknown;
          Line("UNKNOWN " + payload + " " + st.ToString());
        } else {
          ++refused;
          Line("FAIL " + payload + " " + st.ToString());
        }
        failed = true;
      }
      permits.release();
    });
    if (interval_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(interval_us));
  }
  // Every write calls back (bounded wait: a stuck writer is a finding, not a hang).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int k = 0; k < window; ++k) {
    if (!permits.try_acquire_until(deadline)) {
      Line("ERROR callbacks missing after 60 s");
      std::fflush(stdout);
      std::_Exit(3);
    }
  }
  if (!failed.load()) {
    dlog::Status st = w->CloseSync();
    Line("CLOSED " + st.ToString());
  }
  Line("DONE acked=" + std::to_string(acked.load()) + " unknown=" + std::to_string(unknown.load()) +
       " failed=" + std::to_string(refused.load()));
  writer->reset();
  ns->reset();
  client->reset();
  return 0;
}
