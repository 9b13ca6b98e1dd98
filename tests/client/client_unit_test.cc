#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "client/lib/batch.h"
#include "client/lib/client_impl.h"
#include "client/lib/hash.h"
#include "dlog/dlog.h"
#include "protocol/message_batch.h"

namespace dlog::client {
namespace {

TEST(MessageIdTest, StringAndBytesRoundTrip) {
  const std::vector<MessageId> ids = {
      MessageId(0, 0, 0, 0, 0, 0, 1),  MessageId(3, 12, 345, 6, 789012, 7, 10),
      MessageId(2, 1, 2, 3, 4, -1, 5), MessageId(2147483000, 9000000000000, 7, 0, 9100000000000, 99999, 100000),
      MessageId::Earliest(),           MessageId::Latest(),
  };
  for (const MessageId& id : ids) {
    auto s = MessageId::FromString(id.ToString());
    ASSERT_TRUE(s.ok()) << id.ToString() << ": " << s.status().ToString();
    EXPECT_EQ(*s, id);
    auto b = MessageId::FromBytes(id.ToBytes());
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(*b, id);
    EXPECT_EQ(id.ToBytes().size(), 42u);
  }
  EXPECT_EQ(MessageId(3, 12, 345, 6, 789012, 7, 10).ToString(), "3:12:345:6:789012:7:10");
  EXPECT_EQ(MessageId::Earliest().ToString(), "earliest");
  EXPECT_EQ(MessageId::Latest().ToString(), "latest");
}

TEST(MessageIdTest, RejectsBadText) {
  for (const char* bad : {"", "1:2:3", "a:1:2:3:4:5:6", "1:2:3:4:5:6:7:8", "-1:0:0:0:0:0:1", "0:0:0:0:0:5:5",
                          "0:0:0:0:0:0:1x", "0:0::0:0:0:1"}) {
    EXPECT_FALSE(MessageId::FromString(bad).ok()) << bad;
  }
  EXPECT_TRUE(MessageId::FromString("bad").status().Is(ClientErrc::kInvalidArgument));
}

TEST(MessageIdTest, RejectsBadBytes) {
  std::string b = MessageId(1, 2, 3, 4, 5, 0, 1).ToBytes();
  EXPECT_FALSE(MessageId::FromBytes(b.substr(1)).ok());
  std::string damaged = b;
  damaged[10] ^= 1;
  EXPECT_FALSE(MessageId::FromBytes(damaged).ok());
  std::string version = b;
  version[0] = 9;
  EXPECT_FALSE(MessageId::FromBytes(version).ok());
}

TEST(MessageIdTest, Ordering) {
  const MessageId a(0, 1, 5, 0, 10, 0, 3);
  const MessageId b(0, 1, 5, 0, 10, 2, 3);
  const MessageId c(0, 1, 6, 0, 11, 0, 1);
  const MessageId d(0, 2, 0, 0, 12, 0, 1);
  const MessageId e(1, 0, 0, 0, 0, 0, 1);
  EXPECT_LT(MessageId::Earliest(), a);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);
  EXPECT_LT(d, e);  // partitions order first
  EXPECT_LT(e, MessageId::Latest());
  EXPECT_EQ(a, MessageId(0, 1, 5, 0, 10, 0, 3));
  std::vector<MessageId> v = {e, c, MessageId::Latest(), a, d, MessageId::Earliest(), b};
  std::sort(v.begin(), v.end());
  EXPECT_EQ(v, (std::vector<MessageId>{MessageId::Earliest(), a, b, c, d, e, MessageId::Latest()}));
  EXPECT_TRUE(a.is_position());
  EXPECT_FALSE(MessageId::Earliest().is_position());
  EXPECT_FALSE(MessageId::Latest().is_position());
  EXPECT_TRUE(MessageId().is_earliest());
}

TEST(KeyHashTest, Murmur3KnownValues) {
  EXPECT_EQ(Murmur3_32(""), 0u);
  EXPECT_EQ(Murmur3_32("", 1), 0x514e28b7u);
  EXPECT_EQ(Murmur3_32("hello"), 0x248bfa47u);
  EXPECT_EQ(Murmur3_32("The quick brown fox jumps over the lazy dog"), 0x2e4ff723u);
}

TEST(KeyHashTest, PartitionsAreStable) {
  // Fixed values: a change here moves keys between partitions for every
  // deployed producer. Never update them.
  EXPECT_EQ(PartitionForKey("hello", 3), 1);
  EXPECT_EQ(PartitionForKey("hello", 7), 6);
  EXPECT_EQ(PartitionForKey("hello", 16), 7);
  EXPECT_EQ(PartitionForKey("key-1", 3), 1);
  EXPECT_EQ(PartitionForKey("key-1", 7), 6);
  EXPECT_EQ(PartitionForKey("key-1", 16), 0);
  EXPECT_EQ(PartitionForKey("order-42", 3), 2);
  EXPECT_EQ(PartitionForKey("order-42", 7), 6);
  EXPECT_EQ(PartitionForKey("order-42", 16), 14);
  EXPECT_EQ(PartitionForKey("abc", 16), 10);
  EXPECT_EQ(PartitionForKey("anything", 1), 0);
  for (int n = 1; n < 50; ++n) {
    const int32_t p = PartitionForKey("k" + std::to_string(n), n);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, n);
  }
}

class BatchRoundTripTest : public ::testing::TestWithParam<CompressionType> {};

TEST_P(BatchRoundTripTest, BuildDecodeAndSplit) {
  BatchBuilder b(1000, 1u << 20, GetParam());
  std::vector<Message> in;
  for (int i = 0; i < 50; ++i) {
    Message m = Message::Create(std::string(static_cast<size_t>(i * 7), static_cast<char>('a' + i % 26)));
    if (i % 2 == 0) m.SetKey("k" + std::to_string(i % 4));
    if (i % 5 == 0) m.SetProperty("p", std::to_string(i)).SetProperty("q", "x");
    m.SetEventTime(1000 + i);
    in.push_back(m);
  }
  for (const Message& m : in) {
    ASSERT_TRUE(b.HasRoomFor(m));
    b.Add(m);
  }
  EXPECT_EQ(b.count(), 50);
  std::string batch;
  ASSERT_TRUE(b.Build("prod-1", 100, 123456, &batch).ok());
  EXPECT_TRUE(b.empty());

  // What the broker sees.
  proto::BatchMetadata meta;
  std::string_view body;
  ASSERT_TRUE(protocol::ParseBatchMetadata(batch, &meta, &body).ok());
  EXPECT_EQ(meta.producer_name(), "prod-1");
  EXPECT_EQ(meta.sequence_id(), 100);
  EXPECT_EQ(meta.highest_sequence_id(), 149);
  EXPECT_EQ(meta.num_messages(), 50);
  EXPECT_EQ(meta.publish_time_ms(), 123456);
  EXPECT_EQ(meta.compression(), ToProto(GetParam()));
  EXPECT_FALSE(meta.has_batch_key());  // keys differ
  if (GetParam() != CompressionType::kNone) EXPECT_LT(body.size(), meta.uncompressed_size());

  // What a consumer gets, with indexes 3 and 40 already acked.
  ReceivedBatchInfo info;
  info.topic = std::make_shared<const std::string>("t/n/x");
  info.id.set_partition(2);
  info.id.set_segment_seq(4);
  info.id.set_entry(5);
  info.id.set_slot(1);
  info.id.set_record_seq(77);
  info.id.set_batch_index(-1);
  info.redelivery_count = 3;
  proto::Message wire;
  wire.add_acked_batch_bits((1ull << 3) | (1ull << 40));
  info.acked_batch_bits = &wire.acked_batch_bits();
  std::vector<Message> out;
  int32_t n = 0;
  ASSERT_TRUE(DecodeReceivedBatch(Slice::CopyOf(batch), info, &out, &n).ok());
  EXPECT_EQ(n, 50);
  ASSERT_EQ(out.size(), 48u);
  size_t j = 0;
  for (int i = 0; i < 50; ++i) {
    if (i == 3 || i == 40) continue;
    const Message& m = out[j++];
    EXPECT_EQ(m.payload(), in[static_cast<size_t>(i)].payload());
    EXPECT_EQ(m.has_key(), in[static_cast<size_t>(i)].has_key());
    EXPECT_EQ(m.key(), in[static_cast<size_t>(i)].key());
    EXPECT_EQ(m.properties(), in[static_cast<size_t>(i)].properties());
    EXPECT_EQ(m.event_time_ms(), 1000 + i);
    EXPECT_EQ(m.id(), MessageId(2, 4, 5, 1, 77, i, 50));
    EXPECT_EQ(m.publish_time_ms(), 123456);
    EXPECT_EQ(m.redelivery_count(), 3);
    EXPECT_EQ(m.topic(), "t/n/x");
    EXPECT_EQ(m.partition(), 2);
    EXPECT_EQ(m.producer_name(), "prod-1");
    EXPECT_EQ(m.sequence_id(), 100 + i);
  }
}

INSTANTIATE_TEST_SUITE_P(Compression, BatchRoundTripTest,
                         ::testing::Values(CompressionType::kNone, CompressionType::kLz4, CompressionType::kZstd));

TEST(BatchTest, CommonKeyBecomesBatchKey) {
  BatchBuilder b(10, 1u << 20, CompressionType::kNone);
  for (int i = 0; i < 3; ++i) b.Add(Message::Create("x").SetKey("same"));
  std::string batch;
  ASSERT_TRUE(b.Build("p", 0, 1, &batch).ok());
  proto::BatchMetadata meta;
  std::string_view body;
  ASSERT_TRUE(protocol::ParseBatchMetadata(batch, &meta, &body).ok());
  EXPECT_TRUE(meta.has_batch_key());
  EXPECT_EQ(meta.batch_key(), "same");

  // One message without a key: no batch key.
  b.Add(Message::Create("x").SetKey("same"));
  b.Add(Message::Create("y"));
  ASSERT_TRUE(b.Build("p", 3, 1, &batch).ok());
  ASSERT_TRUE(protocol::ParseBatchMetadata(batch, &meta, &body).ok());
  EXPECT_FALSE(meta.has_batch_key());
}

TEST(BatchTest, Limits) {
  BatchBuilder by_count(3, 1u << 20, CompressionType::kNone);
  const Message m = Message::Create("payload");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(by_count.HasRoomFor(m));
    by_count.Add(m);
  }
  EXPECT_TRUE(by_count.full());
  EXPECT_FALSE(by_count.HasRoomFor(m));

  BatchBuilder by_bytes(1000, 1000, CompressionType::kNone);
  const Message big = Message::Create(std::string(400, 'x'));
  by_bytes.Add(big);
  EXPECT_TRUE(by_bytes.HasRoomFor(big));
  by_bytes.Add(big);
  EXPECT_FALSE(by_bytes.HasRoomFor(big));  // a third would pass 1000 bytes
  EXPECT_FALSE(by_bytes.full());
  std::string batch;
  ASSERT_TRUE(by_bytes.Build("p", 0, 1, &batch).ok());

  // A message larger than the byte limit goes alone.
  const Message huge = Message::Create(std::string(5000, 'y'));
  EXPECT_TRUE(by_bytes.HasRoomFor(huge));
  by_bytes.Add(huge);
  EXPECT_TRUE(by_bytes.full());
  EXPECT_FALSE(by_bytes.HasRoomFor(m));
}

TEST(BatchTest, RejectsMalformedReceivedBatch) {
  ReceivedBatchInfo info;
  std::vector<Message> out;
  int32_t n = 0;
  EXPECT_TRUE(DecodeReceivedBatch(Slice::CopyOf("xy"), info, &out, &n).Is(ClientErrc::kProtocolError));
  BatchBuilder b(10, 1u << 20, CompressionType::kLz4);
  b.Add(Message::Create(std::string(100, 'z')));
  std::string batch;
  ASSERT_TRUE(b.Build("p", 0, 1, &batch).ok());
  batch.resize(batch.size() - 3);
  EXPECT_TRUE(DecodeReceivedBatch(Slice::CopyOf(batch), info, &out, &n).Is(ClientErrc::kProtocolError));
  EXPECT_TRUE(out.empty());
}

TEST(NamesTest, ServiceUrlsAndTopics) {
  auto one = ParseServiceUrl("dlog://127.0.0.1:4180");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, std::vector<std::string>{"127.0.0.1:4180"});
  auto many = ParseServiceUrl("dlog://localhost:1,10.0.0.2:2/");
  ASSERT_TRUE(many.ok()) << many.status().ToString();
  EXPECT_EQ(*many, (std::vector<std::string>{"127.0.0.1:1", "10.0.0.2:2"}));
  for (const char* bad : {"", "127.0.0.1:4180", "pulsar://127.0.0.1:6650", "dlog://", "dlog://host", "dlog://a:1,",
                          "dlog://1.2.3.4:0", "dlog://example.com:80"}) {
    EXPECT_TRUE(ParseServiceUrl(bad).status().Is(ClientErrc::kInvalidConfiguration)) << bad;
  }
  EXPECT_TRUE(ValidateTopic("a/b/c").ok());
  for (const char* bad : {"", "a", "a/b", "a/b/c/d", "/b/c", "a//c", "a/b/"}) {
    EXPECT_TRUE(ValidateTopic(bad).Is(ClientErrc::kInvalidTopicName)) << bad;
  }
}

TEST(ClientTest, RejectsBadConfig) {
  ClientConfig c;
  c.service_url = "http://x";
  EXPECT_TRUE(Client::Create(c).status().Is(ClientErrc::kInvalidConfiguration));
  c = ClientConfig{};
  c.io_threads = 4;
  EXPECT_TRUE(Client::Create(c).status().Is(ClientErrc::kInvalidConfiguration));
  c = ClientConfig{};
  c.operation_timeout_ms = 0;
  EXPECT_TRUE(Client::Create(c).status().Is(ClientErrc::kInvalidConfiguration));
}

TEST(ClientTest, EmptyHandlesFailCleanly) {
  Producer p;
  EXPECT_TRUE(p.Send(Message::Create("x")).status().Is(ClientErrc::kIllegalState));
  Consumer c;
  EXPECT_TRUE(c.Receive(0).status().Is(ClientErrc::kIllegalState));
  Reader r;
  EXPECT_TRUE(r.ReadNext(0).status().Is(ClientErrc::kIllegalState));
}

}  // namespace
}  // namespace dlog::client
