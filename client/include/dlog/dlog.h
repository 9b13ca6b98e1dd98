// The dlog client library: everything a user includes.
#pragma once

#include "dlog/client.h"
#include "dlog/config.h"
#include "dlog/consumer.h"
#include "dlog/error.h"
#include "dlog/message.h"
#include "dlog/message_id.h"
#include "dlog/producer.h"
#include "dlog/reader.h"
