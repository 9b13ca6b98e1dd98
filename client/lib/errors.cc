#include "client/lib/errors.h"

namespace dlog {

const char* ErrcTraits<client::ClientErrc>::Name(int code) {
  using client::ClientErrc;
  switch (static_cast<ClientErrc>(code)) {
    case ClientErrc::kUnknownError:
      return "UNKNOWN_ERROR";
    case ClientErrc::kBadRequest:
      return "BAD_REQUEST";
    case ClientErrc::kTopicNotFound:
      return "TOPIC_NOT_FOUND";
    case ClientErrc::kTopicExists:
      return "TOPIC_EXISTS";
    case ClientErrc::kNotOwner:
      return "NOT_OWNER";
    case ClientErrc::kServiceNotReady:
      return "SERVICE_NOT_READY";
    case ClientErrc::kProducerBusy:
      return "PRODUCER_BUSY";
    case ClientErrc::kConsumerBusy:
      return "CONSUMER_BUSY";
    case ClientErrc::kSubscriptionNotFound:
      return "SUBSCRIPTION_NOT_FOUND";
    case ClientErrc::kPersistenceError:
      return "PERSISTENCE_ERROR";
    case ClientErrc::kTooManyRequests:
      return "TOO_MANY_REQUESTS";
    case ClientErrc::kUnknownProducer:
      return "UNKNOWN_PRODUCER";
    case ClientErrc::kUnknownConsumer:
      return "UNKNOWN_CONSUMER";
    case ClientErrc::kNotAllowed:
      return "NOT_ALLOWED";
    case ClientErrc::kInvalidTopicName:
      return "INVALID_TOPIC_NAME";
    case ClientErrc::kUnsupportedVersion:
      return "UNSUPPORTED_VERSION";
    case ClientErrc::kMessageTooLarge:
      return "MESSAGE_TOO_LARGE";
    case ClientErrc::kTimeout:
      return "TIMEOUT";
    case ClientErrc::kInternalError:
      return "INTERNAL_ERROR";
    case ClientErrc::kNamespaceNotFound:
      return "NAMESPACE_NOT_FOUND";
    case ClientErrc::kLeaseExpired:
      return "LEASE_EXPIRED";
    case ClientErrc::kInvalidConfiguration:
      return "INVALID_CONFIGURATION";
    case ClientErrc::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case ClientErrc::kConnectError:
      return "CONNECT_ERROR";
    case ClientErrc::kAlreadyClosed:
      return "ALREADY_CLOSED";
    case ClientErrc::kProducerQueueIsFull:
      return "PRODUCER_QUEUE_IS_FULL";
    case ClientErrc::kIllegalState:
      return "ILLEGAL_STATE";
    case ClientErrc::kProtocolError:
      return "PROTOCOL_ERROR";
    case ClientErrc::kNotConnected:
      return "NOT_CONNECTED";
  }
  return "UNKNOWN";
}

}  // namespace dlog

namespace dlog::client {

bool IsRetryable(ClientErrc code) {
  switch (code) {
    case ClientErrc::kServiceNotReady:
    case ClientErrc::kNotOwner:
    case ClientErrc::kTooManyRequests:
    case ClientErrc::kTimeout:
    case ClientErrc::kConnectError:
    case ClientErrc::kLeaseExpired:
    case ClientErrc::kNotConnected:
    case ClientErrc::kPersistenceError:
    case ClientErrc::kUnknownProducer:
    case ClientErrc::kUnknownConsumer:
      return true;
    default:
      return false;
  }
}

bool IsRetryable(const Status& st) {
  if (st.domain() != kClientErrorDomain) return false;
  return IsRetryable(static_cast<ClientErrc>(st.code()));
}

Status FromServerError(int32_t code, const std::string& message) {
  if (code == proto::SERVER_OK) return Status::OK();
  if (code < 1 || code > static_cast<int32_t>(ClientErrc::kLeaseExpired)) code = proto::SERVER_UNKNOWN_ERROR;
  return Status::Error(static_cast<ClientErrc>(code), message.empty() ? std::string("broker error") : message);
}

Status Err(ClientErrc code, std::string message) { return Status::Error(code, std::move(message)); }

}  // namespace dlog::client
