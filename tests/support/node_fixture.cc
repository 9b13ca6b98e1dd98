#include "tests/support/node_fixture.h"

#include <cstdlib>

namespace dlog::test {

std::string PayloadFor(SegmentId segment, EntryId entry, size_t max_len) {
  uint64_t x = segment.value() * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(entry.value()) * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 31;
  size_t len = 1 + static_cast<size_t>(x % max_len);
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    s[i] = static_cast<char>(x >> 56);
  }
  return s;
}

NodeClientHarness::NodeClientHarness(const std::string& address, size_t window, int64_t timeout_ms)
    : loop_("test-client") {
  loop_.Start();
  node::NodeClientOptions o;
  auto hp = ParseHostPort(address);
  if (!hp.ok()) std::abort();
  o.address = *hp;
  o.window = window;
  o.request_timeout_ms = timeout_ms;
  client_ = std::make_unique<node::NodeClient>(&loop_, o);
}

NodeClientHarness::~NodeClientHarness() {
  client_->Close();
  client_.reset();
  loop_.Stop();
}

}  // namespace dlog::test
