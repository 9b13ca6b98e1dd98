// Helpers for log-stream tests: write many records with a window, read a
// number of records back, compare. Runs over a SegmentCluster (real
// `dlogd logstore` children; embedded store or a real ZooKeeper).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <ostream>
#include <semaphore>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/thread_annotations.h"
#include "logstore/log/dlsn.h"
#include "logstore/log/entry.h"
#include "logstore/log/errors.h"
#include "logstore/log/log_reader.h"
#include "logstore/log/log_writer.h"
#include "logstore/log/namespace.h"
#include "tests/segment/segment_fixture.h"

namespace dlog::log {
// gtest prints DLSNs in failure messages.
inline void PrintTo(const Dlsn& d, std::ostream* os) { *os << d.ToString(); }
}  // namespace dlog::log

namespace dlog::test {

using log::Dlsn;
using log::LogErrc;
using log::LogInfo;
using log::LogReader;
using log::LogRecord;
using log::LogWriter;
using log::Namespace;
using log::NamespaceSettings;
using log::ReaderOptions;
using log::StartPosition;
using log::WriteResult;
using log::WriterOptions;

// A record as read or written, with its payload copied.
struct Rec {
  Dlsn dlsn;
  int64_t seq = -1;
  int64_t txid = 0;
  std::string payload;
};

inline std::string Str(const Dlsn& d) { return d.ToString(); }

// Outcome of one write.
struct WriteOut {
  std::string payload;
  std::optional<int64_t> txid;
  Status status;  // OK: acknowledged
  WriteResult result;
};

// Writes payloads[i] (with txids[i] if given) keeping at most `window` in
// flight; waits for every callback; returns the outcomes in write order and
// checks that callbacks ran in write order (into *order_ok).
inline std::vector<WriteOut> WriteAsync(LogWriter* w, const std::vector<std::string>& payloads, size_t window,
                                        const std::vector<int64_t>* txids = nullptr, bool* order_ok = nullptr) {
  std::counting_semaphore<1 << 20> permits(static_cast<std::ptrdiff_t>(window));
  Mutex mu;
  std::vector<WriteOut> out(payloads.size());
  std::vector<size_t> completion_order;
  completion_order.reserve(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    permits.acquire();
    out[i].payload = payloads[i];
    auto cb = [&, i](Result<WriteResult> r) {
      {
        MutexLock l(&mu);
        if (r.ok()) {
          out[i].result = *r;
        } else {
          out[i].status = r.status();
        }
        completion_order.push_back(i);
      }
      permits.release();
    };
    if (txids != nullptr) {
      out[i].txid = (*txids)[i];
      w->Write(Slice::CopyOf(payloads[i]), (*txids)[i], cb);
    } else {
      w->Write(Slice::CopyOf(payloads[i]), cb);
    }
  }
  for (size_t i = 0; i < window; ++i) permits.acquire();
  MutexLock l(&mu);
  if (order_ok != nullptr) {
    *order_ok = true;
    for (size_t i = 0; i < completion_order.size(); ++i) {
      if (completion_order[i] != i) *order_ok = false;
    }
  }
  return out;
}

inline std::vector<std::string> Payloads(const std::string& prefix, size_t n, size_t first = 0) {
  std::vector<std::string> v;
  v.reserve(n);
  for (size_t i = first; i < first + n; ++i) v.push_back(prefix + "-" + std::to_string(i));
  return v;
}

struct ReadOut {
  std::vector<Rec> recs;
  Status error;  // the error that stopped reading (not kTimeout), if any
};

// Reads until `n` records arrived, an error other than kTimeout, or `timeout`
// (scaled) passed.
inline ReadOut ReadN(LogReader* r, size_t n, std::chrono::milliseconds timeout, size_t batch = 100) {
  ReadOut out;
  const int64_t deadline = MonoMillis() + Scaled(timeout).count();
  while (out.recs.size() < n) {
    const int64_t left = deadline - MonoMillis();
    if (left <= 0) break;
    const size_t want = std::min(batch, n - out.recs.size());
    auto res = r->ReadNextSync(want, std::min<int64_t>(left, 500));
    if (!res.ok()) {
      if (res.status().Is(LogErrc::kTimeout)) continue;
      out.error = res.status();
      break;
    }
    if (res->empty() || res->size() > want) {
      out.error =
          Status::Error(LogErrc::kInvalidArgument, "ReadNextSync returned " + std::to_string(res->size()) + " records");
      break;
    }
    for (auto& lr : *res) out.recs.push_back(Rec{lr.dlsn, lr.seq, lr.txid, lr.payload.ToString()});
  }
  return out;
}

// "" if DLSNs strictly increase and seqs are consecutive from first_seq.
inline std::string CheckOrder(const std::vector<Rec>& recs, int64_t first_seq) {
  for (size_t i = 0; i < recs.size(); ++i) {
    if (recs[i].seq != first_seq + static_cast<int64_t>(i)) {
      return "record " + std::to_string(i) + " (" + recs[i].payload + ") has seq " + std::to_string(recs[i].seq) +
             ", expected " + std::to_string(first_seq + static_cast<int64_t>(i));
    }
    if (i > 0 && !(recs[i - 1].dlsn < recs[i].dlsn)) {
      return "DLSN " + Str(recs[i].dlsn) + " of record " + std::to_string(i) + " does not follow " +
             Str(recs[i - 1].dlsn);
    }
  }
  return "";
}

}  // namespace dlog::test
