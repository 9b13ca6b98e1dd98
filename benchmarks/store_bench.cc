// Google Benchmark: the journal append path, in process — Store::AddEntry
// with a window of adds in flight, through group commit, real pwritev and
// real fdatasync, to the acknowledgement. Items/s is acknowledged adds/s.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "common/crc32c.h"
#include "logstore/node/store.h"

namespace dlog::node {
namespace {

void BM_StoreAppend(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const int window = static_cast<int>(state.range(1));
  std::string dir = std::filesystem::temp_directory_path().string() + "/dlog-store-bench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) std::abort();
  StoreOptions o;
  o.data_dir = dir + "/data";
  o.node_id = "bench";
  o.format = true;
  o.journal_file_bytes = 64u << 20;
  auto store = Store::Open(o);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  Slice payload = Slice::CopyOf(std::string(size, 'b'));
  const uint32_t crc = crc32c::Value(payload.data(), payload.size());
  std::atomic<int> in_flight{0};
  std::atomic<int64_t> errors{0};
  int64_t next = 0;
  for (auto _ : state) {
    while (in_flight.load(std::memory_order_acquire) >= window) std::this_thread::yield();
    in_flight.fetch_add(1, std::memory_order_relaxed);
    (*store)->AddEntry(SegmentId(1), EntryId(next), EntryId(next - 1), crc, payload, false,
                       [&in_flight, &errors](const Status& st) {
                         if (!st.ok()) errors.fetch_add(1);
                         in_flight.fetch_sub(1, std::memory_order_release);
                       });
    ++next;
  }
  while (in_flight.load() > 0) std::this_thread::yield();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  state.counters["errors"] = static_cast<double>(errors.load());
  IgnoreError((*store)->Close());
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_StoreAppend)->Args({100, 256})->Args({1024, 256})->UseRealTime()->MinTime(1.0);

}  // namespace
}  // namespace dlog::node

BENCHMARK_MAIN();
