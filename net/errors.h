// NetErrc: transport-level errors seen by RPC clients.
#pragma once

#include "common/status.h"

namespace dlog::net {

enum class NetErrc : int {
  kTimeout = 1,         // no reply within the request timeout: outcome unknown
  kConnectionLost = 2,  // the connection closed with the request in flight: outcome unknown
  kConnectFailed = 3,   // could not connect; the request was not sent
  kWindowFull = 4,      // the in-flight window is full; the request was not sent
  kClosed = 5,          // the client is closed; the request was not sent
  kProtocolError = 6,   // the peer sent something we cannot decode
};

// True for errors after which the request may or may not have been applied.
inline bool OutcomeUnknown(NetErrc e) { return e == NetErrc::kTimeout || e == NetErrc::kConnectionLost; }

}  // namespace dlog::net

namespace dlog {
template <>
struct ErrcTraits<net::NetErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kNet;
  static const char* Name(int code);
};
}  // namespace dlog
