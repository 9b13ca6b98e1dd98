// Topic names and how they map onto log streams (DESIGN "Broker").
//
//   topic      "tenant/namespace/topic"
//   namespace  log namespace "tenant.namespace" (created on first use)
//   partition  log "<topic>-partition-<i>" in that namespace
//   cursors    log "<topic>-partition-<i>~cursors" (the partition's cursor log)
//
// Syntax: tenant [A-Za-z0-9_-]{1,64}; namespace [A-Za-z0-9_.-]{1,64} (no
// leading '.'); topic [A-Za-z0-9_.:=-]{1,128} (no leading '.'); so the log
// names can never collide (no '~' in a topic, no '.' in a tenant). Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dlog::broker {

inline constexpr int32_t kMaxPartitions = 4096;

struct TopicName {
  std::string tenant;
  std::string ns;
  std::string topic;

  // "tenant/namespace/topic"
  std::string Full() const { return tenant + "/" + ns + "/" + topic; }
  // The log namespace holding the topic's partitions: "tenant.namespace".
  std::string LogNamespace() const { return tenant + "." + ns; }
  std::string PartitionLog(int32_t partition) const { return topic + "-partition-" + std::to_string(partition); }
  std::string CursorLog(int32_t partition) const { return PartitionLog(partition) + "~cursors"; }
  // "tenant/namespace/topic-partition-i": the partition's name in metrics and logs.
  std::string PartitionName(int32_t partition) const { return Full() + "-partition-" + std::to_string(partition); }

  // kInvalidArgument (CommonErrc) with a message saying what is wrong.
  static Result<TopicName> Parse(std::string_view text);
};

// "tenant/namespace": validates and splits; the log namespace name.
Result<std::string> LogNamespaceOf(std::string_view tenant_and_namespace);

}  // namespace dlog::broker
