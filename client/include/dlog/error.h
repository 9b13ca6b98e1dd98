// Errors of the dlog client library: every call returns a dlog::Status or
// dlog::Result<T> (common/status.h) whose code, for errors the client itself
// reports, is a ClientErrc.
//
// Codes 1..21 are the broker's wire codes (broker.proto ServerError) with the
// same numbers; codes from 100 are the client's own.
//
// Retryable (IsRetryable): kServiceNotReady, kNotOwner, kTooManyRequests,
// kTimeout, kConnectError, kLeaseExpired, kNotConnected, kPersistenceError,
// kUnknownProducer, kUnknownConsumer. The library already retries these
// within the operation timeout (sends: within the send timeout) before it
// reports them. Outcome unknown (the operation may or may not have
// happened): kTimeout of a send or an admin call.
#pragma once

#include "common/status.h"

namespace dlog::client {

enum class ClientErrc : int {
  // The broker's codes (ServerError in broker.proto).
  kUnknownError = 1,
  kBadRequest = 2,
  kTopicNotFound = 3,
  kTopicExists = 4,
  kNotOwner = 5,
  kServiceNotReady = 6,
  kProducerBusy = 7,
  kConsumerBusy = 8,
  kSubscriptionNotFound = 9,
  kPersistenceError = 10,
  kTooManyRequests = 11,
  kUnknownProducer = 12,
  kUnknownConsumer = 13,
  kNotAllowed = 14,  // e.g. a cumulative ack on a Shared or Key_Shared subscription
  kInvalidTopicName = 15,
  kUnsupportedVersion = 16,
  kMessageTooLarge = 17,
  kTimeout = 18,  // the operation or send timeout passed
  kInternalError = 19,
  kNamespaceNotFound = 20,
  kLeaseExpired = 21,

  // The client's own.
  kInvalidConfiguration = 100,  // a config value or a service URL is wrong
  kInvalidArgument = 101,       // e.g. a message id that does not parse
  kConnectError = 102,          // no broker could be reached within the operation timeout
  kAlreadyClosed = 103,         // the client, producer, consumer or reader is closed
  kProducerQueueIsFull = 104,   // max_pending_messages reached and block_if_queue_full is off
  kIllegalState = 105,          // e.g. a blocking call made on the client's callback thread
  kProtocolError = 106,         // the broker sent something that does not parse
  kNotConnected = 107,          // the partition is reconnecting (retried internally)
};

// Whether the library retries an operation that failed with `code`.
bool IsRetryable(ClientErrc code);

}  // namespace dlog::client

namespace dlog {
inline constexpr ErrorDomain kClientErrorDomain = ErrorDomain::kClient;

template <>
struct ErrcTraits<client::ClientErrc> {
  static constexpr ErrorDomain kDomain = kClientErrorDomain;
  static const char* Name(int code);
};
}  // namespace dlog
