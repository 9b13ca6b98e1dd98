#include "protocol/frame.h"

#include <string>

#include "common/crc32c.h"

namespace dlog {
const char* ErrcTraits<protocol::ProtocolErrc>::Name(int code) {
  using E = protocol::ProtocolErrc;
  switch (static_cast<E>(code)) {
    case E::kFrameTooLarge:
      return "FRAME_TOO_LARGE";
    case E::kFrameTooSmall:
      return "FRAME_TOO_SMALL";
    case E::kBadChecksum:
      return "BAD_CHECKSUM";
    case E::kBadHeaderLength:
      return "BAD_HEADER_LENGTH";
    case E::kBadHeader:
      return "BAD_HEADER";
    case E::kUnknownCommand:
      return "UNKNOWN_COMMAND";
  }
  return "UNKNOWN";
}
}  // namespace dlog

namespace dlog::protocol {

void EncodeFramePrefix(uint8_t* out, std::string_view header, std::string_view payload) {
  const auto length = static_cast<uint32_t>(kMinFrameLength + header.size() + payload.size());
  PutBe32(out, length);
  PutBe32(out + 8, static_cast<uint32_t>(header.size()));
  uint32_t crc = crc32c::Value(out + 8, 4);
  crc = crc32c::Extend(crc, header.data(), header.size());
  crc = crc32c::Extend(crc, payload.data(), payload.size());
  PutBe32(out + 4, crc);
}

void AppendFrame(ByteBuffer* out, std::string_view header, std::string_view payload) {
  uint8_t* p = out->Reserve(kFramePrefixBytes + header.size() + payload.size());
  EncodeFramePrefix(p, header, payload);
  if (!header.empty()) std::memcpy(p + kFramePrefixBytes, header.data(), header.size());
  if (!payload.empty()) std::memcpy(p + kFramePrefixBytes + header.size(), payload.data(), payload.size());
  out->Commit(kFramePrefixBytes + header.size() + payload.size());
}

DecodeState DecodeFrame(std::string_view in, uint32_t max_frame_bytes, FrameView* frame, size_t* need_total,
                        Status* error) {
  if (need_total) *need_total = 0;
  if (in.size() < 4) return DecodeState::kNeedMore;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint32_t length = GetBe32(p);
  if (length < kMinFrameLength) {
    *error = Status::Error(ProtocolErrc::kFrameTooSmall,
                           "frame length " + std::to_string(length) + " < " + std::to_string(kMinFrameLength));
    return DecodeState::kError;
  }
  if (length > max_frame_bytes) {
    *error =
        Status::Error(ProtocolErrc::kFrameTooLarge, "frame length " + std::to_string(length) +
                                                        " exceeds the limit of " + std::to_string(max_frame_bytes));
    return DecodeState::kError;
  }
  const size_t total = 4 + size_t{length};
  if (need_total) *need_total = total;
  if (in.size() < total) return DecodeState::kNeedMore;
  const uint32_t header_length = GetBe32(p + 8);
  if (header_length > length - kMinFrameLength) {
    *error = Status::Error(ProtocolErrc::kBadHeaderLength, "header length " + std::to_string(header_length) +
                                                               " exceeds frame length " + std::to_string(length));
    return DecodeState::kError;
  }
  const uint32_t crc = crc32c::Value(p + 8, length - 4);
  if (crc != GetBe32(p + 4)) {
    *error = Status::Error(ProtocolErrc::kBadChecksum, "frame checksum mismatch");
    return DecodeState::kError;
  }
  frame->header = in.substr(kFramePrefixBytes, header_length);
  frame->payload = in.substr(kFramePrefixBytes + header_length, length - kMinFrameLength - header_length);
  frame->frame_bytes = total;
  return DecodeState::kFrame;
}

}  // namespace dlog::protocol
