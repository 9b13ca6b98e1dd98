// Google Benchmark: the frame codec and CRC32C (the per-request CPU cost of
// the wire format), and NodeRequest serialize/parse.
#include <benchmark/benchmark.h>

#include <string>

#include "common/buffer.h"
#include "common/crc32c.h"
#include "node.pb.h"
#include "protocol/frame.h"

namespace dlog {
namespace {

void BM_Crc32c(benchmark::State& state) {
  std::string data(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) benchmark::DoNotOptimize(crc32c::Value(data.data(), data.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
  state.SetLabel(crc32c::HardwareAccelerated() ? "sse4.2" : "table");
}
BENCHMARK(BM_Crc32c)->Arg(100)->Arg(1024)->Arg(64 << 10);

void BM_EncodeAddFrame(benchmark::State& state) {
  std::string payload(static_cast<size_t>(state.range(0)), 'p');
  proto::NodeRequest req;
  ByteBuffer out;
  uint64_t id = 0;
  for (auto _ : state) {
    req.Clear();
    req.set_request_id(++id);
    auto* a = req.mutable_add_entry();
    a->set_segment_id(7);
    a->set_entry_id(static_cast<int64_t>(id));
    a->set_lac(static_cast<int64_t>(id) - 1);
    a->set_payload_crc32c(crc32c::Value(payload.data(), payload.size()));
    const size_t hlen = req.ByteSizeLong();
    out.Clear();
    uint8_t* p = out.Reserve(protocol::kFramePrefixBytes + hlen + payload.size());
    req.SerializeWithCachedSizesToArray(p + protocol::kFramePrefixBytes);
    std::memcpy(p + protocol::kFramePrefixBytes + hlen, payload.data(), payload.size());
    protocol::EncodeFramePrefix(p, std::string_view(reinterpret_cast<char*>(p + protocol::kFramePrefixBytes), hlen),
                                payload);
    out.Commit(protocol::kFramePrefixBytes + hlen + payload.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EncodeAddFrame)->Arg(100)->Arg(1024);

void BM_DecodeAddFrame(benchmark::State& state) {
  std::string payload(static_cast<size_t>(state.range(0)), 'p');
  proto::NodeRequest req;
  req.set_request_id(1);
  req.mutable_add_entry()->set_segment_id(7);
  req.mutable_add_entry()->set_entry_id(9);
  ByteBuffer wire;
  protocol::AppendFrame(&wire, req.SerializeAsString(), payload);
  std::string_view in(reinterpret_cast<const char*>(wire.data()), wire.size());
  proto::NodeRequest parsed;
  for (auto _ : state) {
    protocol::FrameView f;
    Status err;
    auto st = protocol::DecodeFrame(in, protocol::kDefaultMaxFrameBytes, &f, nullptr, &err);
    benchmark::DoNotOptimize(st);
    parsed.ParseFromArray(f.header.data(), static_cast<int>(f.header.size()));
    benchmark::DoNotOptimize(parsed.add_entry().entry_id());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_DecodeAddFrame)->Arg(100)->Arg(1024);

}  // namespace
}  // namespace dlog

BENCHMARK_MAIN();
