// Cookie: codec, and the store refusing wiped, swapped or mixed data dirs.
#include "logstore/node/cookie.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "store_test_util.h"

namespace dlog::node {
namespace {

using testing::MustOpen;
using testing::SmallOptions;
using testing::TempDir;
namespace fs = std::filesystem;

TEST(CookieCodec, RoundTripAndChecks) {
  Cookie c = NewCookie("node-a", "cluster-x");
  EXPECT_EQ(c.instance_id.size(), 32u);
  EXPECT_NE(NewCookie("node-a", "cluster-x").instance_id, c.instance_id);
  // The journal salt is random, separate from the reported instance id, and kept in the cookie.
  EXPECT_EQ(c.journal_salt.size(), 32u);
  EXPECT_NE(c.journal_salt, c.instance_id);
  auto back = DecodeCookie(EncodeCookie(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->journal_salt, c.journal_salt);
  const std::string text = EncodeCookie(c);
  auto d = DecodeCookie(text);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->SameIdentity(c));
  EXPECT_EQ(d->format_time_ms, c.format_time_ms);
  std::string bad = text;
  bad[text.find("node-a")] = 'N';
  EXPECT_TRUE(DecodeCookie(bad).status().Is(CommonErrc::kCorruption));
  std::string v2 = text;
  v2.replace(v2.find("dlog-cookie 1"), 13, "dlog-cookie 2");
  // Re-seal so only the version is wrong.
  v2 = v2.substr(0, v2.find("crc32c="));
  char crc[32];
  std::snprintf(crc, sizeof(crc), "crc32c=%08x\n", crc32c::Value(v2.data(), v2.size()));
  v2 += crc;
  auto r = DecodeCookie(v2);
  EXPECT_TRUE(r.status().Is(CommonErrc::kInvalidArgument)) << r.status().ToString();
  EXPECT_TRUE(DecodeCookie("garbage").status().Is(CommonErrc::kCorruption));
}

class CookieStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = MustOpen(SmallOptions(dir_.data(), true));
    ASSERT_TRUE(s);
    ASSERT_TRUE(testing::AddSync(s.get(), 1, 0, "acked").ok());
    ASSERT_TRUE(s->Close().ok());
  }
  Status OpenStatus(const std::string& node = "node-a", bool format = false) {
    StoreOptions o = SmallOptions(dir_.data(), format);
    o.node_id = node;
    auto r = Store::Open(o);
    if (r.ok()) {
      IgnoreError((*r)->Close());
      return Status::OK();
    }
    return r.status();
  }
  // Formats a second data dir for another node.
  std::string OtherNodeDir() {
    StoreOptions o = SmallOptions(other_.data(), true);
    o.node_id = "node-b";
    auto s = MustOpen(o);
    EXPECT_TRUE(s);
    if (s) EXPECT_TRUE(s->Close().ok());
    return other_.data();
  }
  TempDir dir_, other_;
};

TEST_F(CookieStoreTest, ReopenWithTheSameIdentityWorks) {
  EXPECT_TRUE(OpenStatus().ok());
  auto s = MustOpen(SmallOptions(dir_.data(), false));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Info().instance_id, testing::Impl(s.get())->cookie().instance_id);
  EXPECT_TRUE(testing::ReadSync(s.get(), 1, 0).status.ok());
}

TEST_F(CookieStoreTest, WipedDirIsRefused) {
  fs::remove_all(dir_.data());
  Status st = OpenStatus();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.Is(CommonErrc::kCorruption));
  EXPECT_NE(st.message().find("has no cookie: it is new or was wiped"), std::string::npos) << st.ToString();
  // Only the root cookie gone is the same thing.
  TempDir d2;
  auto s = MustOpen(SmallOptions(d2.data(), true));
  ASSERT_TRUE(s->Close().ok());
  fs::remove(d2.data() + "/COOKIE");
  auto r = Store::Open(SmallOptions(d2.data(), false));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has no cookie"), std::string::npos);
}

TEST_F(CookieStoreTest, SwappedDirOfAnotherNodeIsRefused) {
  Status st = OpenStatus("node-b");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.Is(CommonErrc::kInvalidArgument));
  EXPECT_NE(st.message().find("belongs to node node-a (instance "), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("this node is node-b"), std::string::npos) << st.ToString();
}

TEST_F(CookieStoreTest, WipedIndexIsRefused) {
  fs::remove_all(dir_.data() + "/index");
  Status st = OpenStatus();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("index was wiped"), std::string::npos) << st.ToString();
  // And an empty index dir (wiped contents) too.
  fs::create_directory(dir_.data() + "/index");
  st = OpenStatus();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("index was wiped"), std::string::npos) << st.ToString();
}

TEST_F(CookieStoreTest, SwappedIndexIsRefused) {
  const std::string other = OtherNodeDir();
  fs::remove_all(dir_.data() + "/index");
  fs::copy(other + "/index", dir_.data() + "/index", fs::copy_options::recursive);
  Status st = OpenStatus();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("index was wiped or swapped: its cookie"), std::string::npos) << st.ToString();
}

TEST_F(CookieStoreTest, ReplacedJournalCookieIsRefused) {
  const std::string other = OtherNodeDir();
  fs::copy_file(other + "/journal/COOKIE", dir_.data() + "/journal/COOKIE", fs::copy_options::overwrite_existing);
  Status st = OpenStatus();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.Is(CommonErrc::kCorruption));
  EXPECT_NE(st.message().find("journal was swapped"), std::string::npos) << st.ToString();
  fs::remove(dir_.data() + "/journal/COOKIE");
  st = OpenStatus();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("journal was wiped or swapped"), std::string::npos) << st.ToString();
}

TEST_F(CookieStoreTest, FormatOnAnExistingDirIsRefused) {
  Status st = OpenStatus("node-a", /*format=*/true);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("already formatted"), std::string::npos) << st.ToString();
  // Even with the cookie gone, data is data.
  fs::remove(dir_.data() + "/COOKIE");
  st = OpenStatus("node-a", /*format=*/true);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("already formatted"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace dlog::node
