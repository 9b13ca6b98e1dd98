#include "protocol/frame.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/crc32c.h"
#include "node.pb.h"

namespace dlog::protocol {
namespace {

std::string Frame(std::string_view header, std::string_view payload) {
  ByteBuffer b;
  AppendFrame(&b, header, payload);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

DecodeState Decode(std::string_view in, FrameView* f, Status* err, uint32_t max = kDefaultMaxFrameBytes,
                   size_t* need = nullptr) {
  return DecodeFrame(in, max, f, need, err);
}

TEST(Frame, RoundTrip) {
  proto::NodeRequest req;
  req.set_request_id(42);
  req.mutable_add_entry()->set_segment_id(7);
  req.mutable_add_entry()->set_entry_id(3);
  std::string header = req.SerializeAsString();
  std::string wire = Frame(header, "payload bytes");
  FrameView f;
  Status err;
  ASSERT_EQ(Decode(wire, &f, &err), DecodeState::kFrame);
  EXPECT_EQ(f.frame_bytes, wire.size());
  EXPECT_EQ(f.payload, "payload bytes");
  proto::NodeRequest back;
  ASSERT_TRUE(back.ParseFromArray(f.header.data(), static_cast<int>(f.header.size())));
  EXPECT_EQ(back.request_id(), 42u);
  EXPECT_EQ(back.add_entry().segment_id(), 7u);
}

TEST(Frame, EmptyHeaderAndPayload) {
  std::string wire = Frame("", "");
  EXPECT_EQ(wire.size(), kFramePrefixBytes);
  FrameView f;
  Status err;
  ASSERT_EQ(Decode(wire, &f, &err), DecodeState::kFrame);
  EXPECT_TRUE(f.header.empty());
  EXPECT_TRUE(f.payload.empty());
}

TEST(Frame, BackToBackFrames) {
  std::string wire = Frame("h1", "p1") + Frame("header2", "") + Frame("", "p3");
  std::string_view in = wire;
  std::vector<std::pair<std::string, std::string>> got;
  FrameView f;
  Status err;
  while (Decode(in, &f, &err) == DecodeState::kFrame) {
    got.emplace_back(std::string(f.header), std::string(f.payload));
    in.remove_prefix(f.frame_bytes);
  }
  EXPECT_TRUE(in.empty());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].first, "header2");
  EXPECT_EQ(got[2].second, "p3");
}

TEST(Frame, EveryPrefixNeedsMore) {
  std::string wire = Frame("some header", "some payload");
  for (size_t n = 0; n < wire.size(); ++n) {
    FrameView f;
    Status err;
    size_t need = 0;
    EXPECT_EQ(Decode(std::string_view(wire).substr(0, n), &f, &err, kDefaultMaxFrameBytes, &need),
              DecodeState::kNeedMore)
        << n;
    if (n >= 4) EXPECT_EQ(need, wire.size());
  }
}

TEST(Frame, LengthZeroAndTooSmall) {
  for (uint32_t len : {0u, 1u, 7u}) {
    std::string wire(12, '\0');
    PutBe32(reinterpret_cast<uint8_t*>(wire.data()), len);
    FrameView f;
    Status err;
    ASSERT_EQ(Decode(wire, &f, &err), DecodeState::kError) << len;
    EXPECT_TRUE(err.Is(ProtocolErrc::kFrameTooSmall));
  }
}

TEST(Frame, TooLargeRejectedFromTheLengthAlone) {
  for (uint64_t len : {uint64_t{kDefaultMaxFrameBytes} + 1, uint64_t{1} << 31, uint64_t{0xffffffff}}) {
    uint8_t p[4];
    PutBe32(p, static_cast<uint32_t>(len));
    FrameView f;
    Status err;
    ASSERT_EQ(Decode(std::string_view(reinterpret_cast<char*>(p), 4), &f, &err), DecodeState::kError);
    EXPECT_TRUE(err.Is(ProtocolErrc::kFrameTooLarge)) << err.ToString();
  }
  // Exactly the maximum is accepted (it just needs more bytes).
  uint8_t p[4];
  PutBe32(p, kDefaultMaxFrameBytes);
  FrameView f;
  Status err;
  EXPECT_EQ(Decode(std::string_view(reinterpret_cast<char*>(p), 4), &f, &err), DecodeState::kNeedMore);
}

TEST(Frame, BadChecksum) {
  std::string wire = Frame("header", "payload");
  for (size_t i = 4; i < wire.size(); ++i) {
    std::string bad = wire;
    bad[i] ^= 0x40;
    FrameView f;
    Status err;
    DecodeState st = Decode(bad, &f, &err);
    ASSERT_EQ(st, DecodeState::kError) << "flip at " << i;
    EXPECT_TRUE(err.Is(ProtocolErrc::kBadChecksum) || err.Is(ProtocolErrc::kBadHeaderLength)) << err.ToString();
  }
}

TEST(Frame, HeaderLengthBeyondFrame) {
  // A frame whose CRC is right but whose header length claims more than there is.
  std::string wire(16, '\0');
  auto* p = reinterpret_cast<uint8_t*>(wire.data());
  PutBe32(p, 12);     // crc + hdrlen + 4 bytes
  PutBe32(p + 8, 5);  // header length 5 > 4
  PutBe32(p + 4, crc32c::Value(p + 8, 8));
  FrameView f;
  Status err;
  ASSERT_EQ(Decode(wire, &f, &err), DecodeState::kError);
  EXPECT_TRUE(err.Is(ProtocolErrc::kBadHeaderLength));
}

TEST(Frame, HttpAndTlsAreRejected) {
  FrameView f;
  Status err;
  EXPECT_EQ(Decode("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &f, &err), DecodeState::kError);
  const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
  EXPECT_EQ(Decode(std::string_view(hello, sizeof(hello) - 1), &f, &err), DecodeState::kError);
}

TEST(Frame, RandomBytesNeverCrashAndRarelyDecode) {
  std::mt19937 rng(7);
  int frames = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rng() % 64, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    FrameView f;
    Status err;
    if (Decode(junk, &f, &err, 1024) == DecodeState::kFrame) ++frames;
  }
  EXPECT_LT(frames, 3);  // a random frame must also hit a 32-bit CRC
}

}  // namespace
}  // namespace dlog::protocol
