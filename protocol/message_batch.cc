#include "protocol/message_batch.h"

#include <lz4.h>
#include <zstd.h>

#include <cstring>

namespace dlog::protocol {
namespace {

Status Bad(std::string msg) { return Status::Error(CommonErrc::kInvalidArgument, std::move(msg)); }

uint32_t LoadBe32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

void AppendBe32(uint32_t v, std::string* out) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  out->append(b, 4);
}

}  // namespace

Status ParseBatchMetadata(std::string_view batch, proto::BatchMetadata* meta, std::string_view* body) {
  if (batch.size() < 4) return Bad("message batch of " + std::to_string(batch.size()) + " bytes has no metadata");
  const uint32_t len = LoadBe32(batch.data());
  if (len > kMaxBatchMetadataBytes || len > batch.size() - 4) {
    return Bad("message batch metadata length " + std::to_string(len) + " exceeds the batch");
  }
  if (!meta->ParseFromArray(batch.data() + 4, static_cast<int>(len))) {
    return Bad("message batch metadata does not parse");
  }
  if (meta->num_messages() < 1 || meta->num_messages() > kMaxBatchMessages) {
    return Bad("message batch of " + std::to_string(meta->num_messages()) + " messages (1.." +
               std::to_string(kMaxBatchMessages) + ")");
  }
  if (meta->sequence_id() < 0 || meta->highest_sequence_id() < meta->sequence_id() ||
      meta->highest_sequence_id() - meta->sequence_id() != meta->num_messages() - 1) {
    return Bad("message batch sequence ids " + std::to_string(meta->sequence_id()) + ".." +
               std::to_string(meta->highest_sequence_id()) + " do not match its " +
               std::to_string(meta->num_messages()) + " messages");
  }
  if (!proto::CompressionType_IsValid(meta->compression())) {
    return Bad("message batch has unknown compression " + std::to_string(meta->compression()));
  }
  *body = batch.substr(4 + len);
  if (meta->compression() == proto::COMPRESSION_NONE && meta->uncompressed_size() != body->size()) {
    return Bad("uncompressed message batch body is " + std::to_string(body->size()) + " bytes, metadata says " +
               std::to_string(meta->uncompressed_size()));
  }
  return Status::OK();
}

void AppendBatchMetadata(const proto::BatchMetadata& meta, std::string* out) {
  const size_t n = meta.ByteSizeLong();
  AppendBe32(static_cast<uint32_t>(n), out);
  const size_t at = out->size();
  out->resize(at + n);
  meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out->data() + at));
}

Status DecodeBatchBody(std::string_view body, int32_t num_messages, std::vector<BatchMessageView>* out) {
  out->clear();
  size_t pos = 0;
  for (int32_t i = 0; i < num_messages; ++i) {
    if (body.size() - pos < 4) return Bad("message " + std::to_string(i) + " of the batch is cut short");
    const uint32_t len = LoadBe32(body.data() + pos);
    pos += 4;
    if (len > body.size() - pos) return Bad("message " + std::to_string(i) + " metadata exceeds the batch");
    BatchMessageView m;
    if (!m.meta.ParseFromArray(body.data() + pos, static_cast<int>(len))) {
      return Bad("message " + std::to_string(i) + " metadata does not parse");
    }
    pos += len;
    if (m.meta.payload_size() > body.size() - pos) {
      return Bad("message " + std::to_string(i) + " payload exceeds the batch");
    }
    m.payload = body.substr(pos, m.meta.payload_size());
    pos += m.meta.payload_size();
    out->push_back(std::move(m));
  }
  if (pos != body.size()) return Bad(std::to_string(body.size() - pos) + " stray bytes after the batch's messages");
  return Status::OK();
}

void AppendBatchMessage(const proto::SingleMessageMetadata& meta, std::string_view payload, std::string* body) {
  const size_t n = meta.ByteSizeLong();
  AppendBe32(static_cast<uint32_t>(n), body);
  const size_t at = body->size();
  body->resize(at + n);
  meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(body->data() + at));
  body->append(payload);
}

Status Compress(proto::CompressionType type, std::string_view in, std::string* out) {
  switch (type) {
    case proto::COMPRESSION_NONE:
      out->assign(in);
      return Status::OK();
    case proto::COMPRESSION_LZ4: {
      if (in.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return Bad("too large to compress with lz4");
      out->resize(static_cast<size_t>(LZ4_compressBound(static_cast<int>(in.size()))));
      const int n =
          LZ4_compress_default(in.data(), out->data(), static_cast<int>(in.size()), static_cast<int>(out->size()));
      if (n <= 0) return Status::Error(CommonErrc::kInternal, "lz4 compression failed");
      out->resize(static_cast<size_t>(n));
      return Status::OK();
    }
    case proto::COMPRESSION_ZSTD: {
      out->resize(ZSTD_compressBound(in.size()));
      const size_t n = ZSTD_compress(out->data(), out->size(), in.data(), in.size(), 1);
      if (ZSTD_isError(n)) return Status::Error(CommonErrc::kInternal, std::string("zstd: ") + ZSTD_getErrorName(n));
      out->resize(n);
      return Status::OK();
    }
    default:
      return Bad("unknown compression " + std::to_string(type));
  }
}

Status Decompress(proto::CompressionType type, std::string_view in, uint32_t uncompressed_size, std::string* out) {
  switch (type) {
    case proto::COMPRESSION_NONE:
      if (in.size() != uncompressed_size) return Bad("uncompressed body size mismatch");
      out->assign(in);
      return Status::OK();
    case proto::COMPRESSION_LZ4: {
      out->resize(uncompressed_size);
      const int n =
          LZ4_decompress_safe(in.data(), out->data(), static_cast<int>(in.size()), static_cast<int>(uncompressed_size));
      if (n < 0 || static_cast<uint32_t>(n) != uncompressed_size) return Bad("lz4 body does not decompress");
      return Status::OK();
    }
    case proto::COMPRESSION_ZSTD: {
      out->resize(uncompressed_size);
      const size_t n = ZSTD_decompress(out->data(), out->size(), in.data(), in.size());
      if (ZSTD_isError(n) || n != uncompressed_size) return Bad("zstd body does not decompress");
      return Status::OK();
    }
    default:
      return Bad("unknown compression " + std::to_string(type));
  }
}

}  // namespace dlog::protocol
