// RawBrokerClient: a blocking, frame-level client of the broker protocol for
// tests that must control every byte (bad input, a connection that outlives
// its broker's ownership). Not the client library.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "broker.pb.h"
#include "common/buffer.h"
#include "protocol/frame.h"
#include "protocol/message_batch.h"
#include "tests/support/test_util.h"

namespace dlog::test {

class RawBrokerClient {
 public:
  explicit RawBrokerClient(uint16_t port) : fd_(ConnectLoopback(port)) {}
  ~RawBrokerClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

  bool SendBytes(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  bool Send(const proto::BaseCommand& cmd, const std::string& payload = "") {
    ByteBuffer b;
    protocol::AppendFrame(&b, cmd.SerializeAsString(), payload);
    return SendBytes(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
  }

  // The next command, or nullopt after `timeout_ms` / on close. *closed tells which.
  std::optional<proto::BaseCommand> Next(int timeout_ms, bool* closed = nullptr, std::string* payload = nullptr) {
    if (closed) *closed = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      protocol::FrameView f;
      Status err;
      auto st = protocol::DecodeFrame(buf_, protocol::kDefaultMaxFrameBytes, &f, nullptr, &err);
      if (st == protocol::DecodeState::kFrame) {
        proto::BaseCommand cmd;
        cmd.ParseFromArray(f.header.data(), static_cast<int>(f.header.size()));
        if (payload) payload->assign(f.payload);
        buf_.erase(0, f.frame_bytes);
        return cmd;
      }
      if (st == protocol::DecodeState::kError) return std::nullopt;
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::milliseconds(0)) return std::nullopt;
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count();
      timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000 + 1)};
      setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      char b[65536];
      ssize_t n = ::recv(fd_, b, sizeof(b), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        if (closed) *closed = true;
        return std::nullopt;
      }
      if (n > 0) buf_.append(b, static_cast<size_t>(n));
    }
  }

  // The next command of kind `kind` (others are skipped), or nullopt.
  std::optional<proto::BaseCommand> NextOf(proto::BaseCommand::CommandCase kind, int timeout_ms,
                                           std::string* payload = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto c = Next(static_cast<int>(left.count()), nullptr, payload);
      if (!c) return std::nullopt;
      if (c->command_case() == kind) return c;
    }
  }

  bool Connect() {
    proto::BaseCommand c;
    c.mutable_connect()->set_protocol_version(1);
    c.mutable_connect()->set_client_version("raw-test");
    if (!Send(c)) return false;
    auto r = Next(5000);
    return r && r->has_connected();
  }

  // Registers a producer; the reply command.
  std::optional<proto::BaseCommand> Producer(uint64_t rid, uint64_t pid, const std::string& topic, int32_t partition,
                                             const std::string& name) {
    proto::BaseCommand c;
    auto* p = c.mutable_producer();
    p->set_request_id(rid);
    p->set_producer_id(pid);
    p->set_topic(topic);
    p->set_partition(partition);
    p->set_producer_name(name);
    Send(c);
    return Next(20000);
  }

  // A one-message batch of `name` with sequence id `seq`.
  static std::string Batch(const std::string& name, int64_t seq, const std::string& body) {
    proto::BatchMetadata meta;
    meta.set_producer_name(name);
    meta.set_sequence_id(seq);
    meta.set_highest_sequence_id(seq);
    meta.set_num_messages(1);
    std::string inner;
    proto::SingleMessageMetadata sm;
    sm.set_payload_size(static_cast<uint32_t>(body.size()));
    protocol::AppendBatchMessage(sm, body, &inner);
    meta.set_uncompressed_size(static_cast<uint32_t>(inner.size()));
    std::string out;
    protocol::AppendBatchMetadata(meta, &out);
    out += inner;
    return out;
  }

  bool SendMessage(uint64_t pid, const std::string& name, int64_t seq, const std::string& body) {
    proto::BaseCommand c;
    auto* s = c.mutable_send();
    s->set_producer_id(pid);
    s->set_sequence_id(seq);
    s->set_highest_sequence_id(seq);
    s->set_num_messages(1);
    return Send(c, Batch(name, seq, body));
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

}  // namespace dlog::test
