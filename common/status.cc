#include "common/status.h"

namespace dlog {

const char* DomainName(ErrorDomain d) {
  switch (d) {
    case ErrorDomain::kOk:
      return "ok";
    case ErrorDomain::kCommon:
      return "common";
    case ErrorDomain::kNet:
      return "net";
    case ErrorDomain::kProtocol:
      return "protocol";
    case ErrorDomain::kNode:
      return "node";
    case ErrorDomain::kMetadata:
      return "metadata";
    case ErrorDomain::kSegment:
      return "segment";
    case ErrorDomain::kLog:
      return "log";
    case ErrorDomain::kBroker:
      return "broker";
    case ErrorDomain::kClient:
      return "client";
  }
  return "unknown";
}

const char* ErrcTraits<CommonErrc>::Name(int code) {
  switch (static_cast<CommonErrc>(code)) {
    case CommonErrc::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case CommonErrc::kNotFound:
      return "NOT_FOUND";
    case CommonErrc::kIoError:
      return "IO_ERROR";
    case CommonErrc::kCorruption:
      return "CORRUPTION";
    case CommonErrc::kTimeout:
      return "TIMEOUT";
    case CommonErrc::kUnavailable:
      return "UNAVAILABLE";
    case CommonErrc::kAborted:
      return "ABORTED";
    case CommonErrc::kInternal:
      return "INTERNAL";
    case CommonErrc::kAlreadyExists:
      return "ALREADY_EXISTS";
    case CommonErrc::kOutOfRange:
      return "OUT_OF_RANGE";
  }
  return "UNKNOWN";
}

const char* Status::CodeName() const {
  if (ok()) return "OK";
  return rep_->name(code_);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = DomainName(domain_);
  s += '.';
  s += CodeName();
  if (!rep_->message.empty()) {
    s += ": ";
    s += rep_->message;
  }
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  Status s = *this;
  std::string msg(context);
  msg += ": ";
  msg += message();
  s.rep_ = std::make_shared<const Rep>(Rep{rep_->name, std::move(msg)});
  return s;
}

}  // namespace dlog
