#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace dlog {
namespace {

// RFC 3720, appendix B.4.
TEST(Crc32c, Rfc3720Vectors) {
  uint8_t buf[32];
  std::memset(buf, 0, sizeof(buf));
  EXPECT_EQ(crc32c::Value(buf, sizeof(buf)), 0x8a9136aau);
  std::memset(buf, 0xff, sizeof(buf));
  EXPECT_EQ(crc32c::Value(buf, sizeof(buf)), 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c::Value(buf, sizeof(buf)), 0x46dd794eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(crc32c::Value(buf, sizeof(buf)), 0x113fdb5cu);
  const uint8_t iscsi_read[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                  0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(crc32c::Value(iscsi_read, sizeof(iscsi_read)), 0xd9963a56u);
}

TEST(Crc32c, KnownString) { EXPECT_EQ(crc32c::Value("123456789", 9), 0xe3069283u); }

TEST(Crc32c, ExtendEqualsWhole) {
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  const uint32_t whole = crc32c::Value(data.data(), data.size());
  for (size_t split : {0, 1, 7, 8, 9, 500, 999, 1000}) {
    uint32_t c = crc32c::Value(data.data(), split);
    c = crc32c::Extend(c, data.data() + split, data.size() - split);
    EXPECT_EQ(c, whole) << "split at " << split;
  }
}

TEST(Crc32c, UnalignedStartsAgree) {
  std::vector<uint8_t> data(300);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ 0x5a);
  std::vector<uint8_t> copy(data.size() + 8);
  for (size_t off = 0; off < 8; ++off) {
    std::memcpy(copy.data() + off, data.data(), data.size());
    EXPECT_EQ(crc32c::Value(copy.data() + off, data.size()), crc32c::Value(data.data(), data.size()));
  }
}

TEST(Crc32c, DetectsSingleBitFlip) {
  std::string data(4096, 'x');
  const uint32_t good = crc32c::Value(data.data(), data.size());
  data[2048] ^= 1;
  EXPECT_NE(crc32c::Value(data.data(), data.size()), good);
}

}  // namespace
}  // namespace dlog
