#include "common/status.h"

#include <gtest/gtest.h>

namespace dlog {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.domain(), ErrorDomain::kOk);
}

TEST(Status, ErrorCarriesDomainCodeAndMessage) {
  Status s = Status::Error(CommonErrc::kNotFound, "segment 7");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.Is(CommonErrc::kNotFound));
  EXPECT_FALSE(s.Is(CommonErrc::kIoError));
  EXPECT_EQ(s.ToString(), "common.NOT_FOUND: segment 7");
  Status c = s.WithContext("reading");
  EXPECT_EQ(c.message(), "reading: segment 7");
  EXPECT_EQ(s.message(), "segment 7");  // the original is unchanged
}

TEST(Result, ValueAndError) {
  Result<int> r = 5;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
  Result<int> e = Status::Error(CommonErrc::kTimeout, "slow");
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(e.status().Is(CommonErrc::kTimeout));
}

Result<int> Twice(Result<int> in) {
  DLOG_ASSIGN_OR_RETURN(int v, std::move(in));
  return v * 2;
}

TEST(Result, AssignOrReturn) {
  EXPECT_EQ(*Twice(21), 42);
  EXPECT_TRUE(Twice(Status::Error(CommonErrc::kAborted, "x")).status().Is(CommonErrc::kAborted));
}

TEST(Result, ValueOfErrorAborts) {
  Result<int> e = Status::Error(CommonErrc::kTimeout, "slow");
  EXPECT_DEATH(IgnoreError(e.value()), "value\\(\\) of failed Result");
}

}  // namespace
}  // namespace dlog
