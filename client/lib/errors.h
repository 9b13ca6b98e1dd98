// Internal error helpers.
#pragma once

#include <string>

#include "broker.pb.h"
#include "dlog/error.h"

namespace dlog::client {

// True for a ClientErrc the library retries within the operation timeout.
bool IsRetryable(const Status& st);
// A broker error code (ServerError) and text as a Status (OK for SERVER_OK).
Status FromServerError(int32_t code, const std::string& message);
Status Err(ClientErrc code, std::string message);

}  // namespace dlog::client
