#include "broker/cursor/cursor_snapshot.h"

#include "broker/cursor/partition_cursors.h"
#include "common/logging.h"

namespace dlog::broker {

namespace {
// Blocks looked at per step (read from RocksDB together if not resident).
constexpr size_t kBlocksPerStep = 64;
// Rough encoded size of a block's piece entry beyond its partials.
constexpr size_t kBlockOverhead = kBlockWords * 8 + 16;
// A block bigger than this cannot be put in a chunk (a log record is at most 1 MiB).
constexpr size_t kMaxBlockBytes = 900u << 10;
}  // namespace

CursorSnapshotter::CursorSnapshotter(PartitionCursors* pc) : pc_(pc) {}

CursorSnapshotter::~CursorSnapshotter() { *alive_ = false; }

void CursorSnapshotter::Start() {
  id_ = pc_->writer_->next_seq();
  names_ = pc_->SubscriptionNames();
  chunk_.Clear();
  chunk_.mutable_chunk()->set_snapshot_id(id_);
  chunk_bytes_ = 0;
  if (pc_->has_dedup_) {
    chunk_.mutable_chunk()->set_has_dedup(true);
    chunk_.mutable_chunk()->set_dedup(pc_->dedup_);
    EmitChunk();
  }
  Next();
}

void CursorSnapshotter::StartPiece(SubscriptionCursor* sub) {
  proto::SnapshotSubscription* p = chunk_.mutable_chunk()->add_subscriptions();
  p->set_name(sub->name());
  p->set_type(sub->type());
  // Read now, after the blocks below were read (README "Snapshots").
  p->set_mark_delete(sub->mark_delete());
  chunk_bytes_ += sub->name().size() + 24;
  piece_open_ = true;
}

void CursorSnapshotter::AddBlocks(SubscriptionCursor* sub, const std::vector<int64_t>& indexes,
                                  const std::vector<std::string>& stored) {
  if (!piece_open_) StartPiece(sub);
  const int64_t floor = BlockOf(sub->mark_delete());
  for (size_t k = 0; k < indexes.size(); ++k) {
    const int64_t index = indexes[k];
    if (index < floor) continue;
    proto::CursorBlock b;
    auto it = sub->blocks_.find(index);
    if (it != sub->blocks_.end() && it->second.block && !it->second.loading) {
      it->second.block->ToProto(&b);
    } else if (k < stored.size() && !stored[k].empty()) {
      if (!b.ParseFromString(stored[k])) continue;  // the load of it reports the damage
    } else {
      continue;  // dropped meanwhile (now under mark_delete)
    }
    size_t bytes = kBlockOverhead;
    for (const auto& pa : b.partials()) bytes += 24 + static_cast<size_t>(pa.words_size()) * 8;
    if (bytes > kMaxBlockBytes) {
      // Cannot go in one record: give this snapshot up (no commit: replay
      // ignores its chunks); the log keeps its deltas and is not truncated.
      return Abandon("block " + std::to_string(index) + " of " + sub->name() + " needs " + std::to_string(bytes) +
                     " bytes");
    }
    if (chunk_bytes_ + bytes > pc_->options_.snapshot_chunk_bytes && chunk_bytes_ > 0) {
      EmitChunk();
      StartPiece(sub);
    }
    auto* piece = chunk_.mutable_chunk()->mutable_subscriptions(chunk_.chunk().subscriptions_size() - 1);
    *piece->add_blocks() = std::move(b);
    chunk_bytes_ += bytes;
  }
}

void CursorSnapshotter::Next() {
  while (name_i_ < names_.size()) {
    SubscriptionCursor* sub = pc_->Find(names_[name_i_]);
    if (sub == nullptr) {
      ++name_i_;
      next_block_ = 0;
      piece_open_ = false;
      continue;
    }
    std::vector<int64_t> indexes;
    std::vector<std::string> keys;
    bool need_read = false;
    for (auto it = sub->blocks_.lower_bound(next_block_); it != sub->blocks_.end() && indexes.size() < kBlocksPerStep;
         ++it) {
      indexes.push_back(it->first);
      if (!it->second.block || it->second.loading) need_read = true;
    }
    const bool last_step = indexes.size() < kBlocksPerStep;
    auto advance = [this, last_step, indexes] {
      if (last_step) {
        ++name_i_;
        next_block_ = 0;
        piece_open_ = false;
      } else {
        next_block_ = indexes.back() + 1;
      }
    };
    if (!need_read) {
      AddBlocks(sub, indexes, {});
      if (finished_) return;
      advance();
      continue;
    }
    for (int64_t i : indexes) keys.push_back(CursorDb::BlockKey(pc_->partition_key_, sub->id_, i));
    auto values = std::make_shared<std::vector<std::string>>(keys.size());
    auto st = std::make_shared<Status>();
    std::weak_ptr<bool> alive = alive_;
    const std::string name = names_[name_i_];
    pc_->db_->Submit(
        pc_->loop_,
        [keys, values, st](rocksdb::DB* db) {
          for (size_t k = 0; k < keys.size(); ++k) {
            rocksdb::Status s = db->Get(rocksdb::ReadOptions(), keys[k], &(*values)[k]);
            if (s.IsNotFound()) {
              (*values)[k].clear();
            } else if (!s.ok()) {
              *st = FromRocks(s, "read cursor block for a snapshot");
              return;
            }
          }
        },
        [this, alive, name, indexes, values, st, advance] {
          if (alive.expired()) return;
          if (!st->ok()) return Finish(*st);
          SubscriptionCursor* s = pc_->Find(name);
          if (s != nullptr) AddBlocks(s, indexes, *values);
          if (finished_) return;
          advance();
          Next();
        });
    return;
  }
  if (chunk_bytes_ > 0 || chunks_ == 0) EmitChunk();
  Commit();
}

void CursorSnapshotter::EmitChunk() {
  chunk_.set_version(1);
  chunk_.mutable_chunk()->set_chunk_index(chunks_++);
  std::weak_ptr<bool> alive = alive_;
  pc_->Send(chunk_.SerializeAsString(), [this, alive](Result<log::WriteResult> r) {
    if (alive.expired() || !r.ok()) return;  // the commit reports the failure
    if (!have_first_) {
      have_first_ = true;
      first_dlsn_ = r->dlsn;
    }
  });
  chunk_.Clear();
  chunk_.mutable_chunk()->set_snapshot_id(id_);
  chunk_bytes_ = 0;
}

void CursorSnapshotter::Commit() {
  proto::CursorLogRecord rec;
  rec.set_version(1);
  rec.mutable_commit()->set_snapshot_id(id_);
  rec.mutable_commit()->set_chunks(chunks_);
  std::weak_ptr<bool> alive = alive_;
  pc_->Send(rec.SerializeAsString(), [this, alive](Result<log::WriteResult> r) {
    if (alive.expired()) return;
    if (!r.ok()) return Finish(r.status());
    // Every record before the first chunk is now redundant.
    if (have_first_) {
      PartitionCursors* pc = pc_;
      std::weak_ptr<bool> pc_alive = pc_->alive_;
      net::EventLoop* loop = pc_->loop_;
      const log::Dlsn at = first_dlsn_;
      pc_->ns_->Truncate(pc_->log_name_, at, [pc, pc_alive, loop, at](Status st) {
        loop->Post([pc, pc_alive, at, st] {
          if (pc_alive.expired()) return;
          if (st.ok()) {
            ++pc->stats_.truncations;
          } else {
            DLOG_WARN << pc->log_name_ << ": truncating the cursor log before " << at.ToString()
                      << " failed: " << st.ToString();
          }
        });
      });
    }
    Finish(Status::OK());
  });
}

void CursorSnapshotter::Abandon(const std::string& why) {
  if (finished_) return;
  DLOG_WARN << pc_->log_name_ << ": snapshot " << id_ << " given up (" << why << ")";
  abandoned_ = true;
  Finish(Status::OK());
}

void CursorSnapshotter::Finish(Status st) {
  if (finished_) return;
  finished_ = true;
  pc_->SnapshotDone(std::move(st), !abandoned_);
}

}  // namespace dlog::broker
