#include "common/config.h"

#include <gtest/gtest.h>

namespace dlog {
namespace {

TEST(Config, ByteSizes) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("64KiB"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("5MiB"), 5u << 20);
  EXPECT_EQ(*ParseByteSize("1GiB"), 1ull << 30);
  EXPECT_EQ(*ParseByteSize("10KB"), 10000u);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("MiB").ok());
  EXPECT_FALSE(ParseByteSize("12 parsecs").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseByteSize("18446744073709551615GiB").ok());
  EXPECT_NE(ParseByteSize("12 parsecs").status().message().find("12 parsecs"), std::string::npos);
}

TEST(Config, Durations) {
  EXPECT_EQ(*ParseDurationMicros("250us"), 250);
  EXPECT_EQ(*ParseDurationMicros("10ms"), 10000);
  EXPECT_EQ(*ParseDurationMicros("10"), 10000);
  EXPECT_EQ(*ParseDurationMicros("2s"), 2000000);
  EXPECT_EQ(*ParseDurationMicros("1m"), 60000000);
  EXPECT_FALSE(ParseDurationMicros("-1s").ok());
  EXPECT_FALSE(ParseDurationMicros("1h").ok());
}

TEST(Config, HostPort) {
  auto hp = ParseHostPort("127.0.0.1:4181");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 4181);
  EXPECT_EQ(hp->ToString(), "127.0.0.1:4181");
  EXPECT_TRUE(ParseHostPort("127.0.0.1:0").ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1").ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1:65536").ok());
  EXPECT_FALSE(ParseHostPort("localhost:80").ok());
  EXPECT_FALSE(ParseHostPort("1.2.3.4:").ok());
}

}  // namespace
}  // namespace dlog
