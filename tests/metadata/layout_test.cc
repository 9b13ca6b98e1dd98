#include "metadata/layout.h"

#include <gtest/gtest.h>

#include "metadata/metadata_store.h"

namespace dlog::metadata {
namespace {

TEST(LayoutTest, Paths) {
  auto l = Layout::Make("prod-1");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->root(), "/dlog/prod-1");
  EXPECT_EQ(l->Node("n1"), "/dlog/prod-1/nodes/n1");
  EXPECT_EQ(l->Cookie("n1"), "/dlog/prod-1/cookies/n1");
  EXPECT_EQ(l->Segment(SegmentId(42)), "/dlog/prod-1/segments/0/42");
  EXPECT_EQ(l->Segment(SegmentId(123456789)), "/dlog/prod-1/segments/12345/123456789");
  EXPECT_EQ(l->SegmentBucket(SegmentId(9999)), "/dlog/prod-1/segments/0");
  EXPECT_EQ(l->SegmentBucket(SegmentId(10000)), "/dlog/prod-1/segments/1");
  EXPECT_EQ(l->Namespace("default"), "/dlog/prod-1/namespaces/default");
  EXPECT_EQ(l->Log("tenant/ns", "topic-partition-0"), "/dlog/prod-1/namespaces/tenant%2Fns/topic-partition-0");
  EXPECT_EQ(l->LogLockDir("d", "a/b"), "/dlog/prod-1/namespaces/d/a%2Fb/lock");
  EXPECT_EQ(l->Broker("b:1"), "/dlog/prod-1/brokers/b%3A1");
  EXPECT_EQ(l->Topic("t/n/x"), "/dlog/prod-1/topics/t%2Fn%2Fx");
  EXPECT_EQ(l->Ownership("p"), "/dlog/prod-1/ownership/p");
  EXPECT_EQ(l->SegmentIdCounter(), "/dlog/prod-1/counters/segment-id");
  for (const auto& d : l->Directories()) EXPECT_TRUE(ValidatePath(d).ok()) << d;
}

TEST(LayoutTest, SegmentPathsParseBack) {
  auto l = Layout::Make("c");
  ASSERT_TRUE(l.ok());
  for (uint64_t id : {uint64_t{0}, uint64_t{1}, uint64_t{9999}, uint64_t{10000}, UINT64_MAX}) {
    auto back = l->ParseSegment(l->Segment(SegmentId(id)));
    ASSERT_TRUE(back.has_value()) << id;
    EXPECT_EQ(back->value(), id);
  }
  EXPECT_FALSE(l->ParseSegment("/dlog/c/segments/1/42").has_value());  // wrong bucket
  EXPECT_FALSE(l->ParseSegment("/dlog/c/segments/0/042").has_value());
  EXPECT_FALSE(l->ParseSegment("/dlog/c/segments/0").has_value());
  EXPECT_FALSE(l->ParseSegment("/dlog/other/segments/0/1").has_value());
  EXPECT_FALSE(l->ParseSegment("/dlog/c/segments/0/99999999999999999999999").has_value());
}

TEST(LayoutTest, BadClusterNames) {
  for (const char* bad : {"", ".", "..", "a/b", "a b", "é"}) {
    EXPECT_TRUE(Layout::Make(bad).status().Is(MetaErrc::kInvalidArgument)) << bad;
  }
}

TEST(LayoutTest, EscapeRoundTrip) {
  for (std::string name :
       std::vector<std::string>{"plain", "a/b/c", "100%", "", ".", "..", "sp ace", std::string("nul\0x", 5), "é"}) {
    std::string e = EscapeName(name);
    if (!name.empty()) EXPECT_TRUE(ValidatePath("/" + e).ok()) << e;
    auto back = UnescapeName(e);
    ASSERT_TRUE(back.ok()) << e;
    EXPECT_EQ(*back, name);
  }
  EXPECT_FALSE(UnescapeName("%").ok());
  EXPECT_FALSE(UnescapeName("%4").ok());
  EXPECT_FALSE(UnescapeName("%zz").ok());
  EXPECT_FALSE(UnescapeName("a/b").ok());
}

TEST(PathTest, Helpers) {
  EXPECT_TRUE(ValidatePath("/").ok());
  EXPECT_TRUE(ValidatePath("/a/b").ok());
  EXPECT_FALSE(ValidatePath("").ok());
  EXPECT_FALSE(ValidatePath("a").ok());
  EXPECT_FALSE(ValidatePath("/a/").ok());
  EXPECT_FALSE(ValidatePath("//a").ok());
  EXPECT_FALSE(ValidatePath("/a/./b").ok());
  EXPECT_FALSE(ValidatePath(std::string("/a\0b", 4)).ok());
  EXPECT_EQ(ParentPath("/a/b"), "/a");
  EXPECT_EQ(ParentPath("/a"), "/");
  EXPECT_EQ(BaseName("/a/b"), "b");
  EXPECT_EQ(JoinPath("/", "a"), "/a");
  EXPECT_EQ(JoinPath("/a", "b"), "/a/b");
  EXPECT_EQ(SequenceOf("lock-0000000042"), 42);
  EXPECT_EQ(SequenceOf("0000000000"), 0);
  EXPECT_EQ(SequenceOf("lock-00000042"), -1);
  EXPECT_EQ(SequenceOf("lock-x000000042"), -1);
}

}  // namespace
}  // namespace dlog::metadata
