// libFuzzer target for the bytes a node reads from a socket: the frame
// decoder, the NodeRequest/NodeResponse parsers and request validation.
//
// The first input byte is a mode: when odd, each frame's CRC is patched to
// be correct before decoding, so the fuzzer reaches the protobuf parser and
// the validator instead of stopping at the checksum.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/buffer.h"
#include "common/crc32c.h"
#include "node.pb.h"
#include "protocol/frame.h"
#include "protocol/node_request.h"

namespace {

constexpr uint32_t kMaxFrame = 1 << 16;

void PatchCrc(std::string* buf, size_t at) {
  if (buf->size() < at + 12) return;
  auto* p = reinterpret_cast<uint8_t*>(buf->data() + at);
  uint32_t length = dlog::GetBe32(p);
  if (length < 8 || length > kMaxFrame || buf->size() < at + 4 + length) return;
  dlog::PutBe32(p + 4, dlog::crc32c::Value(p + 8, length - 4));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool fix_crc = (data[0] & 1) != 0;
  std::string buf(reinterpret_cast<const char*>(data + 1), size - 1);
  dlog::protocol::NodeRequestLimits limits;
  limits.max_payload_bytes = kMaxFrame;
  size_t at = 0;
  while (at < buf.size()) {
    if (fix_crc) PatchCrc(&buf, at);
    std::string_view in(buf.data() + at, buf.size() - at);
    dlog::protocol::FrameView f;
    dlog::Status err;
    size_t need = 0;
    auto st = dlog::protocol::DecodeFrame(in, kMaxFrame, &f, &need, &err);
    if (st != dlog::protocol::DecodeState::kFrame) {
      if (st == dlog::protocol::DecodeState::kError && err.ok()) __builtin_trap();  // an error must say why
      break;
    }
    if (f.frame_bytes == 0 || f.frame_bytes > in.size()) __builtin_trap();
    dlog::proto::NodeRequest req;
    if (req.ParseFromArray(f.header.data(), static_cast<int>(f.header.size()))) {
      dlog::Status v = dlog::protocol::ValidateNodeRequest(req, f.payload, limits);
      if (!v.ok() && v.message().empty()) __builtin_trap();  // every rejection has a text
    }
    dlog::proto::NodeResponse resp;
    dlog::IgnoreError(resp.ParseFromArray(f.header.data(), static_cast<int>(f.header.size())));
    at += f.frame_bytes;
  }
  return 0;
}
