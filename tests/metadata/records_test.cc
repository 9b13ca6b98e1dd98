#include "metadata/records.h"

#include <gtest/gtest.h>

#include "common/crc32c.h"

namespace dlog::metadata {
namespace {

const char kPath[] = "/dlog/c1/segments/0/42";

proto::SegmentMetadata Sample() {
  proto::SegmentMetadata seg;
  seg.set_segment_id(42);
  seg.set_state(proto::SEGMENT_CLOSED);
  seg.set_ensemble_size(3);
  seg.set_write_quorum(3);
  seg.set_ack_quorum(2);
  auto* f = seg.add_fragments();
  f->set_first_entry_id(0);
  f->add_ensemble("a");
  f->add_ensemble("b");
  f->add_ensemble("c");
  seg.set_last_entry_id(99);
  seg.set_length(4096);
  seg.set_first_record_seq(1000);
  seg.set_record_count(250);
  seg.set_max_txid(77);
  return seg;
}

TEST(RecordsTest, RoundTrip) {
  auto r = Decode<proto::SegmentMetadata>(kPath, Encode(Sample()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->segment_id(), 42u);
  EXPECT_EQ(r->state(), proto::SEGMENT_CLOSED);
  EXPECT_EQ(r->fragments(0).ensemble(2), "c");
  EXPECT_EQ(r->max_txid(), 77);

  proto::NodeRegistration reg;
  reg.set_address("127.0.0.1:4181");
  reg.mutable_cookie()->set_node_id("n1");
  reg.mutable_cookie()->set_instance_id("abc");
  reg.mutable_cookie()->set_cluster_id("c1");
  auto r2 = Decode<proto::NodeRegistration>("/x", Encode(reg));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->cookie().cluster_id(), "c1");

  // An empty message still makes a valid record.
  EXPECT_TRUE(Decode<proto::LogMetadata>("/x", Encode(proto::LogMetadata())).ok());
}

void ExpectError(const Status& st, MetaErrc code) {
  EXPECT_TRUE(st.Is(code)) << st.ToString();
  EXPECT_NE(st.message().find(kPath), std::string::npos) << "message does not name the path: " << st.message();
}

TEST(RecordsTest, CorruptRecordsNameThePath) {
  std::string good = Encode(Sample());
  ExpectError(Decode<proto::SegmentMetadata>(kPath, "").status(), MetaErrc::kCorruptRecord);
  ExpectError(Decode<proto::SegmentMetadata>(kPath, "\xff\xff\xff\xff garbage").status(), MetaErrc::kCorruptRecord);
  ExpectError(Decode<proto::SegmentMetadata>(kPath, good.substr(0, good.size() / 2)).status(),
              MetaErrc::kCorruptRecord);
  // Wrong type.
  ExpectError(Decode<proto::LogMetadata>(kPath, good).status(), MetaErrc::kCorruptRecord);
  // Flip one payload byte: the CRC catches it.
  proto::MetadataRecord rec;
  ASSERT_TRUE(rec.ParseFromString(good));
  std::string payload = rec.payload();
  payload[payload.size() / 2] ^= 0x01;
  rec.set_payload(payload);
  ExpectError(Decode<proto::SegmentMetadata>(kPath, rec.SerializeAsString()).status(), MetaErrc::kCorruptRecord);
  // Bad magic.
  ASSERT_TRUE(rec.ParseFromString(good));
  rec.set_magic(1);
  ExpectError(Decode<proto::SegmentMetadata>(kPath, rec.SerializeAsString()).status(), MetaErrc::kCorruptRecord);
  // A payload with the right CRC that does not parse as the type.
  ASSERT_TRUE(rec.ParseFromString(good));
  std::string junk = "\xff\xff\xff";
  rec.set_payload(junk);
  rec.set_payload_crc32c(crc32c::Value(junk.data(), junk.size()));
  ExpectError(Decode<proto::SegmentMetadata>(kPath, rec.SerializeAsString()).status(), MetaErrc::kCorruptRecord);
}

TEST(RecordsTest, UnknownVersionNamesThePath) {
  proto::MetadataRecord rec;
  ASSERT_TRUE(rec.ParseFromString(Encode(Sample())));
  rec.set_format_version(kRecordFormatVersion + 1);
  auto r = Decode<proto::SegmentMetadata>(kPath, rec.SerializeAsString());
  ExpectError(r.status(), MetaErrc::kUnknownVersion);
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos) << r.status().message();
  rec.set_format_version(0);
  ExpectError(Decode<proto::SegmentMetadata>(kPath, rec.SerializeAsString()).status(), MetaErrc::kUnknownVersion);
}

TEST(RecordsTest, ErrorCodesHaveNames) {
  Status st = Status::Error(MetaErrc::kBadVersion, "x");
  EXPECT_EQ(st.ToString(), "metadata.BAD_VERSION: x");
  EXPECT_STREQ(Status::Error(MetaErrc::kConnectionLoss, "").CodeName(), "CONNECTION_LOSS");
  EXPECT_STREQ(Status::Error(MetaErrc::kSessionExpired, "").CodeName(), "SESSION_EXPIRED");
}

}  // namespace
}  // namespace dlog::metadata
