#include "client/lib/batch.h"

#include "client/lib/errors.h"
#include "client/lib/message_access.h"
#include "protocol/message_batch.h"

namespace dlog::client {

proto::CompressionType ToProto(CompressionType c) {
  switch (c) {
    case CompressionType::kLz4:
      return proto::COMPRESSION_LZ4;
    case CompressionType::kZstd:
      return proto::COMPRESSION_ZSTD;
    case CompressionType::kNone:
      break;
  }
  return proto::COMPRESSION_NONE;
}

size_t EncodedMessageSize(const Message& m) {
  // An upper bound of the metadata is enough for the limits: 4 (length) +
  // key + properties + a few varints.
  size_t n = 4 + 32 + m.size() + m.key().size();
  for (const auto& [k, v] : m.properties()) n += k.size() + v.size() + 8;
  return n;
}

BatchBuilder::BatchBuilder(int max_messages, uint32_t max_bytes, CompressionType compression)
    : max_messages_(max_messages < 1 ? 1 : max_messages), max_bytes_(max_bytes), compression_(ToProto(compression)) {}

bool BatchBuilder::HasRoomFor(const Message& m) const {
  if (count_ == 0) return true;
  if (count_ >= max_messages_) return false;
  return body_.size() + EncodedMessageSize(m) <= max_bytes_;
}

bool BatchBuilder::full() const { return count_ >= max_messages_ || body_.size() >= max_bytes_; }

void BatchBuilder::Add(const Message& m) {
  scratch_.Clear();
  const auto& key = MessageAccess::key(m);
  if (key) {
    scratch_.set_key(*key);
    scratch_.set_has_key(true);
  }
  for (const auto& [k, v] : m.properties()) {
    proto::KeyValue* kv = scratch_.add_properties();
    kv->set_key(k);
    kv->set_value(v);
  }
  scratch_.set_event_time_ms(m.event_time_ms());
  scratch_.set_payload_size(static_cast<uint32_t>(m.size()));
  protocol::AppendBatchMessage(scratch_, m.payload(), &body_);
  if (count_ == 0) {
    keys_differ_ = !key.has_value();
    if (key) common_key_ = *key;
  } else if (!keys_differ_ && (!key || *key != *common_key_)) {
    keys_differ_ = true;
  }
  ++count_;
}

Status BatchBuilder::Build(const std::string& producer_name, int64_t first_sequence_id, int64_t publish_time_ms,
                           std::string* out) {
  meta_.Clear();
  meta_.set_producer_name(producer_name);
  meta_.set_sequence_id(first_sequence_id);
  meta_.set_highest_sequence_id(first_sequence_id + count_ - 1);
  meta_.set_publish_time_ms(publish_time_ms);
  meta_.set_num_messages(count_);
  meta_.set_compression(compression_);
  meta_.set_uncompressed_size(static_cast<uint32_t>(body_.size()));
  if (!keys_differ_ && common_key_) {
    meta_.set_batch_key(*common_key_);
    meta_.set_has_batch_key(true);
  }
  out->clear();
  Status st;
  if (compression_ == proto::COMPRESSION_NONE) {
    out->reserve(body_.size() + 64 + producer_name.size());
    protocol::AppendBatchMetadata(meta_, out);
    out->append(body_);
  } else {
    st = protocol::Compress(compression_, body_, &compressed_);
    if (st.ok()) {
      out->reserve(compressed_.size() + 64 + producer_name.size());
      protocol::AppendBatchMetadata(meta_, out);
      out->append(compressed_);
    }
  }
  count_ = 0;
  body_.clear();
  if (body_.capacity() > (4u << 20)) body_.shrink_to_fit();
  compressed_.clear();
  common_key_.reset();
  keys_differ_ = false;
  return st;
}

proto::MessageIdData ToProto(const MessageId& id) {
  proto::MessageIdData d;
  d.set_partition(id.partition());
  d.set_segment_seq(id.segment_seq());
  d.set_entry(id.entry());
  d.set_slot(id.slot());
  d.set_record_seq(id.record_seq());
  d.set_batch_index(id.batch_index());
  d.set_batch_size(id.batch_size());
  return d;
}

MessageId FromProto(const proto::MessageIdData& d) {
  return MessageId(d.partition(), d.segment_seq(), d.entry(), d.slot(), d.record_seq(), d.batch_index(),
                   d.batch_size());
}

Status DecodeReceivedBatch(const Slice& payload, const ReceivedBatchInfo& info, std::vector<Message>* out,
                           int32_t* num_messages) {
  *num_messages = 0;
  proto::BatchMetadata meta;
  std::string_view body;
  if (Status st = protocol::ParseBatchMetadata(payload.view(), &meta, &body); !st.ok()) {
    return Err(ClientErrc::kProtocolError, "received batch: " + st.message());
  }
  *num_messages = meta.num_messages();
  Slice body_slice;
  if (meta.compression() == proto::COMPRESSION_NONE) {
    body_slice = payload.Sub(static_cast<size_t>(body.data() - payload.view().data()), body.size());
  } else {
    if (meta.uncompressed_size() > kMaxUncompressedBatchBytes) {
      return Err(ClientErrc::kProtocolError,
                 "received batch claims " + std::to_string(meta.uncompressed_size()) + " uncompressed bytes");
    }
    std::string plain;
    if (Status st = protocol::Decompress(meta.compression(), body, meta.uncompressed_size(), &plain); !st.ok()) {
      return Err(ClientErrc::kProtocolError, "received batch: " + st.message());
    }
    body_slice = Slice::CopyOf(plain);
  }
  std::vector<protocol::BatchMessageView> views;
  if (Status st = protocol::DecodeBatchBody(body_slice.view(), meta.num_messages(), &views); !st.ok()) {
    return Err(ClientErrc::kProtocolError, "received batch: " + st.message());
  }
  auto producer = std::make_shared<const std::string>(meta.producer_name());
  const int32_t n = meta.num_messages();
  for (int32_t i = 0; i < n; ++i) {
    if (info.acked_batch_bits != nullptr) {
      const size_t word = static_cast<size_t>(i) / 64;
      if (word < static_cast<size_t>(info.acked_batch_bits->size()) &&
          ((info.acked_batch_bits->Get(static_cast<int>(word)) >> (i % 64)) & 1u) != 0) {
        continue;
      }
    }
    const protocol::BatchMessageView& v = views[static_cast<size_t>(i)];
    Message m;
    MessageAccess::SetSharedPayload(
        &m, body_slice.Sub(static_cast<size_t>(v.payload.data() - body_slice.view().data()), v.payload.size()));
    if (v.meta.has_key()) MessageAccess::SetKey(&m, v.meta.key());
    if (v.meta.properties_size() > 0) {
      auto& props = MessageAccess::properties(&m);
      props.reserve(static_cast<size_t>(v.meta.properties_size()));
      for (const auto& kv : v.meta.properties()) props.emplace_back(kv.key(), kv.value());
    }
    m.SetEventTime(v.meta.event_time_ms());
    const proto::MessageIdData& d = info.id;
    MessageAccess::SetId(&m, MessageId(d.partition(), d.segment_seq(), d.entry(), d.slot(), d.record_seq(), i, n));
    MessageAccess::SetReceived(&m, meta.publish_time_ms(), info.redelivery_count, meta.sequence_id() + i, info.topic,
                               producer);
    out->push_back(std::move(m));
  }
  return Status::OK();
}

}  // namespace dlog::client
