// The frame codec: pure functions over bytes, no I/O (fuzzable).
//
// Frame (all integers big-endian):
//   u32 length          bytes that follow this field (>= 8, <= max_frame_bytes)
//   u32 crc32c          CRC32C of every byte after this field
//   u32 header_length   bytes of the protobuf command (<= length - 8)
//   header_length bytes protobuf command (NodeRequest / NodeResponse)
//   rest                payload (entry bytes; may be empty)
// Spec: docs/formats/frame.md.
//
// Thread-safety: FrameDecoder is single-threaded; the functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/buffer.h"
#include "common/status.h"

namespace dlog::protocol {

inline constexpr size_t kFramePrefixBytes = 12;  // length + crc + header_length
inline constexpr uint32_t kMinFrameLength = 8;   // crc + header_length
inline constexpr uint32_t kDefaultMaxFrameBytes = 5u << 20;

enum class ProtocolErrc : int {
  kFrameTooLarge = 1,
  kFrameTooSmall = 2,
  kBadChecksum = 3,
  kBadHeaderLength = 4,
  kBadHeader = 5,  // protobuf command does not parse
  kUnknownCommand = 6,
};

}  // namespace dlog::protocol

namespace dlog {
template <>
struct ErrcTraits<protocol::ProtocolErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kProtocol;
  static const char* Name(int code);
};
}  // namespace dlog

namespace dlog::protocol {

// Writes the 12-byte prefix for a frame with the given header and payload into
// `out` (which must have room for kFramePrefixBytes). The CRC covers the
// header-length field, header and payload.
void EncodeFramePrefix(uint8_t* out, std::string_view header, std::string_view payload);

// Appends a whole frame to `out`.
void AppendFrame(ByteBuffer* out, std::string_view header, std::string_view payload);

// A decoded frame: views into the decoder's input.
struct FrameView {
  std::string_view header;
  std::string_view payload;
  size_t frame_bytes = 0;  // prefix + header + payload: bytes consumed
};

enum class DecodeState { kFrame, kNeedMore, kError };

// Examines the bytes at the start of `in`. On kFrame, *frame views the first
// complete frame. On kNeedMore, *need_total (if not null) is the total frame
// size once the length is known (0 before). On kError, *error says why; the
// connection must be closed: the stream cannot be resynchronised.
//
// The length is validated before the rest of the frame is awaited, so a caller
// can refuse to buffer an oversized frame.
DecodeState DecodeFrame(std::string_view in, uint32_t max_frame_bytes, FrameView* frame, size_t* need_total,
                        Status* error);

}  // namespace dlog::protocol
