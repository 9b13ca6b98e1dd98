// Helpers for the net and node client tests: a blocking raw TCP client that
// speaks the frame format (or sends arbitrary bytes), and polling waits.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "common/buffer.h"
#include "protocol/frame.h"

namespace dlog::net::testing {

// DLOG_TEST_TIME_SCALE (default 1) stretches every wait.
inline double TimeScale() {
  const char* s = std::getenv("DLOG_TEST_TIME_SCALE");
  double v = s ? std::atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}
inline int Scaled(int ms) { return static_cast<int>(ms * TimeScale()); }

inline bool WaitFor(const std::function<bool()>& cond, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(Scaled(timeout_ms));
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

inline std::string EncodeFrame(std::string_view header, std::string_view payload) {
  ByteBuffer b;
  protocol::AppendFrame(&b, header, payload);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class RawClient {
 public:
  explicit RawClient(uint16_t port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval tv{};
    const int scaled = Scaled(timeout_ms);
    tv.tv_sec = scaled / 1000;
    tv.tv_usec = (scaled % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool SendAll(std::string_view bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool SendFrame(std::string_view header, std::string_view payload) { return SendAll(EncodeFrame(header, payload)); }

  bool ReadExactly(size_t n, std::string* out) {
    out->resize(n);
    size_t off = 0;
    while (off < n) {
      ssize_t r = ::recv(fd_, out->data() + off, n - off, 0);
      if (r <= 0) return false;
      off += static_cast<size_t>(r);
    }
    return true;
  }

  // Reads one frame; false on EOF, error or timeout.
  bool ReadFrame(std::string* header, std::string* payload) {
    std::string prefix;
    if (!ReadExactly(protocol::kFramePrefixBytes, &prefix)) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(prefix.data());
    const uint32_t length = GetBe32(p);
    const uint32_t hlen = GetBe32(p + 8);
    if (length < protocol::kMinFrameLength || hlen > length - protocol::kMinFrameLength) return false;
    std::string rest;
    if (!ReadExactly(length - protocol::kMinFrameLength, &rest)) return false;
    *header = rest.substr(0, hlen);
    *payload = rest.substr(hlen);
    return true;
  }

  // True once the peer closed (EOF or reset) within the timeout; unread data is skipped.
  bool WaitClosed(int timeout_ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(Scaled(timeout_ms));
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      ssize_t r = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (r == 0) return true;
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

}  // namespace dlog::net::testing
