// Helpers for tests that talk to real `dlogd logstore` processes.
#pragma once

#include <memory>
#include <string>

#include "common/buffer.h"
#include "common/strong_id.h"
#include "logstore/node/client.h"
#include "net/event_loop.h"

namespace dlog::test {

// Deterministic payload for (segment, entry): its length varies from 1 byte
// to `max_len` bytes, so tests verify contents without storing them.
std::string PayloadFor(SegmentId segment, EntryId entry, size_t max_len = 1024);

// A client loop plus a NodeClient to one address.
class NodeClientHarness {
 public:
  explicit NodeClientHarness(const std::string& address, size_t window = 256, int64_t timeout_ms = 5000);
  ~NodeClientHarness();
  node::NodeClient& client() { return *client_; }
  net::EventLoop& loop() { return loop_; }

 private:
  net::EventLoop loop_;
  std::unique_ptr<node::NodeClient> client_;
};

}  // namespace dlog::test
