#include "net/errors.h"

namespace dlog {

const char* ErrcTraits<net::NetErrc>::Name(int code) {
  using E = net::NetErrc;
  switch (static_cast<E>(code)) {
    case E::kTimeout:
      return "TIMEOUT";
    case E::kConnectionLost:
      return "CONNECTION_LOST";
    case E::kConnectFailed:
      return "CONNECT_FAILED";
    case E::kWindowFull:
      return "WINDOW_FULL";
    case E::kClosed:
      return "CLOSED";
    case E::kProtocolError:
      return "PROTOCOL_ERROR";
  }
  return "UNKNOWN";
}

}  // namespace dlog
