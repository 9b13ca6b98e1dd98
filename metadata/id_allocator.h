// AllocateId: 64-bit ids (segment ids, incarnations of counters) that are
// never handed out twice, on any MetadataStore, even across restarts and
// connection losses.
//
// The counter at `path` is an IdCounter record (records.h) holding the next
// id. An allocation reads it and compare-and-sets next_id + 1 with a token
// unique to this allocation in `last_writer`, so after a connection loss the
// store's re-read recognises our write (MetadataStore "re-read and compare").
// A missing counter is created (ids start at 1). Under contention the CAS is
// retried; ids are increasing but callers must not assume they are dense.
//
// Errors: those of the store (kConnectionLoss: unknown whether an id was
// consumed, which only leaves a gap), kCorruptRecord / kUnknownVersion naming
// the path. The callback runs on the store's loop.
#pragma once

#include <cstdint>
#include <string>

#include "metadata/metadata_store.h"

namespace dlog::metadata {

void AllocateId(MetadataStore* store, std::string path, Callback<uint64_t> cb);
// Blocking; not on the store's loop.
Result<uint64_t> AllocateIdSync(MetadataStore* store, const std::string& path);

}  // namespace dlog::metadata
