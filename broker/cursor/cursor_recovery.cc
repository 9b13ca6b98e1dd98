#include "broker/cursor/cursor_recovery.h"

#include <rocksdb/iterator.h>

#include <limits>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/logging.h"
#include "cursor.pb.h"
#include "logstore/log/errors.h"

namespace dlog::broker {

namespace {

uint64_t Be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

Status Corrupt(const std::string& what) { return Status::Error(CommonErrc::kCorruption, what); }

Result<std::shared_ptr<AckSet>> ToAckSet(const proto::AckDelta& d) {
  auto set = std::make_shared<AckSet>();
  set->has_mark_delete = d.has_mark_delete();
  set->mark_delete = d.mark_delete();
  if (d.mark_delete() < 0) return Corrupt("ack delta with a negative mark-delete");
  for (const auto& r : d.ranges()) {
    if (r.first() < 0 || r.last() < r.first()) return Corrupt("ack delta with a bad range");
    set->ranges.emplace_back(r.first(), r.last());
  }
  for (const auto& p : d.partials()) {
    if (Status st = ValidatePartial(p.seq(), p.batch_size(), static_cast<size_t>(p.words_size())); !st.ok()) {
      return Corrupt(st.message());
    }
    set->partials.push_back(AckSet::Partial{p.seq(), p.batch_size(), {p.words().begin(), p.words().end()}});
  }
  return set;
}

}  // namespace

void CursorRecovery::Start(std::unique_ptr<PartitionCursors> pc, PartitionCursors::OpenCallback cb) {
  auto r = std::make_shared<CursorRecovery>(std::move(pc), std::move(cb));
  r->loop_->Post([r] { r->CreateLog(); });
}

CursorRecovery::CursorRecovery(std::unique_ptr<PartitionCursors> pc, PartitionCursors::OpenCallback cb)
    : pc_(std::move(pc)), cb_(std::move(cb)), loop_(pc_->loop_) {}

CursorRecovery::~CursorRecovery() = default;

std::function<void()> CursorRecovery::OnLoop(std::function<void()> f) {
  return [self = shared_from_this(), f = std::move(f)] {
    if (self->done_) return;
    f();
  };
}

void CursorRecovery::Finish(Status st) {
  if (done_) return;
  done_ = true;
  reader_.reset();
  auto cb = std::move(cb_);
  if (!st.ok()) {
    pc_.reset();  // abandons the writer: the lock is released
    return cb(st);
  }
  cb(std::move(pc_));
}

void CursorRecovery::CreateLog() {
  auto self = shared_from_this();
  pc_->ns_->CreateLog(pc_->log_name_, [self](Status st) {
    self->loop_->Post(self->OnLoop([self, st] {
      if (!st.ok() && !st.Is(log::LogErrc::kLogExists)) return self->Finish(st);
      self->OpenWriter();
    }));
  });
}

void CursorRecovery::OpenWriter() {
  auto self = shared_from_this();
  log::WriterOptions wo;
  wo.owner_id = pc_->options_.owner_id.empty() ? "cursors" : pc_->options_.owner_id;
  wo.lock_timeout_ms = pc_->options_.lock_timeout_ms;
  pc_->ns_->OpenWriter(pc_->log_name_, wo, [self](Result<std::unique_ptr<log::LogWriter>> w) {
    auto shared = std::make_shared<Result<std::unique_ptr<log::LogWriter>>>(std::move(w));
    self->loop_->Post([self, shared] {
      if (self->done_) return;  // the writer (if any) is dropped: lock released
      if (!shared->ok()) return self->Finish(shared->status());
      self->pc_->writer_ = std::move(**shared);
      self->tail_seq_ = self->pc_->writer_->next_seq() - 1;
      self->pc_->ns_->GetLogInfo(self->pc_->log_name_, [self](Result<log::LogInfo> info) {
        self->loop_->Post(self->OnLoop([self, info] {
          if (!info.ok()) return self->Finish(info.status());
          self->pc_->log_incarnation_ = info->meta.incarnation();
          self->ReadMeta();
        }));
      });
    });
  });
}

void CursorRecovery::ReadMeta() {
  auto self = shared_from_this();
  auto value = std::make_shared<std::string>();
  auto st = std::make_shared<Status>();
  std::string key = CursorDb::MetaKey(pc_->partition_key_);
  pc_->db_->Submit(
      loop_,
      [key, value, st](rocksdb::DB* db) {
        rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key, value.get());
        if (s.IsNotFound()) {
          value->clear();
        } else {
          *st = FromRocks(s, "read cursor meta");
        }
      },
      OnLoop([self, value, st] { self->Decide(*st, std::move(*value)); }));
}

void CursorRecovery::Decide(Status st, std::string value) {
  if (!st.ok()) return Finish(st);
  auto meta = std::make_shared<proto::CursorDbMeta>();
  std::string why;
  if (value.empty()) {
    why = "no local state";
  } else if (!meta->ParseFromString(value) || meta->version() != 1) {
    why = "local meta record unreadable";
  } else if (!meta->clean()) {
    why = "local state was not closed cleanly";
  } else if (meta->log_incarnation() != pc_->log_incarnation_) {
    why = "local state is of another incarnation of the log";
  } else if (meta->last_seq() != tail_seq_) {
    why = "local state reflects record " + std::to_string(meta->last_seq()) + ", the log ends at " +
          std::to_string(tail_seq_);
  }
  if (!why.empty()) {
    DLOG_INFO << pc_->log_name_ << ": replaying the cursor log (" << why << ")";
    return Replay();
  }
  if (tail_seq_ < 0) return FastPath(meta);
  CheckTail(meta);
}

void CursorRecovery::CheckTail(std::shared_ptr<proto::CursorDbMeta> meta) {
  auto self = shared_from_this();
  log::Dlsn d{meta->last_dlsn_segment(), meta->last_dlsn_entry(), meta->last_dlsn_slot()};
  pc_->ns_->OpenReader(
      pc_->log_name_, log::StartPosition::At(d), {}, [self, meta, d](Result<std::unique_ptr<log::LogReader>> r) {
        auto shared = std::make_shared<Result<std::unique_ptr<log::LogReader>>>(std::move(r));
        self->loop_->Post(self->OnLoop([self, meta, d, shared] {
          if (!shared->ok()) {
            DLOG_INFO << self->pc_->log_name_
                      << ": replaying the cursor log (tail unreadable: " << shared->status().ToString() << ")";
            return self->Replay();
          }
          self->reader_ = std::move(**shared);
          self->reader_->ReadNext(1, [self, meta, d](Result<std::vector<log::LogRecord>> recs) {
            self->loop_->Post(self->OnLoop([self, meta, d, recs] {
              self->reader_.reset();
              bool same =
                  recs.ok() && !recs->empty() && recs->front().dlsn == d && recs->front().seq == self->tail_seq_ &&
                  crc32c::Value(recs->front().payload.view().data(), recs->front().payload.size()) == meta->last_crc();
              if (!same) {
                DLOG_INFO << self->pc_->log_name_ << ": replaying the cursor log (its tail is not the local state's)";
                return self->Replay();
              }
              self->FastPath(meta);
            }));
          });
        }));
      });
}

void CursorRecovery::FastPath(std::shared_ptr<proto::CursorDbMeta> meta) {
  PartitionCursors* pc = pc_.get();
  pc->next_sub_id_ = std::max<uint64_t>(meta->next_id(), 1);
  std::map<uint64_t, int64_t> mds;
  for (const auto& s : meta->subscriptions()) {
    pc->NewSub(s.name(), s.type(), s.mark_delete(), s.id());
    mds[s.id()] = s.mark_delete();
    pc->next_sub_id_ = std::max(pc->next_sub_id_, s.id() + 1);
  }
  pc->has_dedup_ = meta->has_dedup();
  pc->dedup_ = meta->dedup();
  pc->last_seq_ = meta->last_seq();
  pc->last_dlsn_ = log::Dlsn{meta->last_dlsn_segment(), meta->last_dlsn_entry(), meta->last_dlsn_slot()};
  pc->last_crc_ = meta->last_crc();
  pc->stats_.opened_from_db = true;

  // Summaries of every stored block (the blocks themselves stay on disk).
  using Summaries = std::map<uint64_t, std::map<int64_t, BlockSummary>>;
  auto out = std::make_shared<Summaries>();
  auto st = std::make_shared<Status>();
  const std::string prefix = CursorDb::PartitionPrefix(pc->partition_key_) + "b";
  auto self = shared_from_this();
  pc->db_->Submit(
      loop_,
      [prefix, mds, out, st](rocksdb::DB* db) {
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
        rocksdb::WriteBatch garbage;
        for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
          rocksdb::Slice k = it->key();
          if (k.size() != prefix.size() + 16) {
            *st = Corrupt("cursor db: bad block key");
            return;
          }
          const uint64_t id = Be64(k.data() + prefix.size());
          const int64_t index = static_cast<int64_t>(Be64(k.data() + prefix.size() + 8));
          auto md = mds.find(id);
          if (md == mds.end()) {
            garbage.Delete(k);
            continue;
          }
          proto::CursorBlock pb;
          if (!pb.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
            *st = Corrupt("cursor db: block does not parse");
            return;
          }
          auto b = AckBlock::FromProto(pb);
          if (!b.ok()) {
            *st = b.status();
            return;
          }
          b->ClearBelow(md->second);
          BlockSummary s = b->Summarize();
          if (s.empty()) {
            garbage.Delete(k);
            continue;
          }
          (*out)[id][index] = s;
        }
        if (!it->status().ok()) {
          *st = FromRocks(it->status(), "scan cursor blocks");
          return;
        }
        *st = FromRocks(db->Write(rocksdb::WriteOptions(), &garbage), "drop stale cursor blocks");
      },
      OnLoop([self, out, st] {
        if (!st->ok()) {
          DLOG_WARN << self->pc_->log_name_ << ": local cursor state unusable (" << st->ToString()
                    << "); replaying the cursor log";
          self->pc_->subs_.clear();
          self->pc_->has_dedup_ = false;
          self->pc_->dedup_.clear();
          self->pc_->stats_.opened_from_db = false;
          return self->Replay();
        }
        for (auto& [name, sub] : self->pc_->subs_) {
          auto f = out->find(sub->id_);
          if (f != out->end()) sub->Install(std::move(f->second));
        }
        self->MarkNotClean([self] { self->Finish(Status::OK()); });
      }));
}

void CursorRecovery::MarkNotClean(std::function<void()> next) {
  auto st = std::make_shared<Status>();
  auto batch = std::make_shared<rocksdb::WriteBatch>();
  batch->Put(CursorDb::MetaKey(pc_->partition_key_), pc_->EncodeMeta(/*clean=*/false));
  const bool sync = pc_->db_->options().sync_meta;
  auto self = shared_from_this();
  pc_->db_->Submit(
      loop_,
      [batch, st, sync](rocksdb::DB* db) {
        rocksdb::WriteOptions wo;
        wo.sync = sync;
        *st = FromRocks(db->Write(wo, batch.get()), "write cursor meta");
      },
      OnLoop([self, st, next] {
        if (!st->ok()) return self->Finish(*st);
        next();
      }));
}

// ---------------------------------------------------------------- replay

void CursorRecovery::Replay() {
  PartitionCursors* pc = pc_.get();
  pc->subs_.clear();
  pc->next_sub_id_ = 1;
  pc->last_seq_ = -1;
  pc->last_dlsn_ = log::Dlsn{};
  pc->last_crc_ = 0;
  auto st = std::make_shared<Status>();
  const std::string from = CursorDb::PartitionPrefix(pc->partition_key_);
  const std::string to = CursorDb::PartitionEnd(pc->partition_key_);
  auto self = shared_from_this();
  pc->db_->Submit(
      loop_,
      [from, to, st](rocksdb::DB* db) {
        rocksdb::WriteBatch b;
        b.DeleteRange(from, to);
        *st = FromRocks(db->Write(rocksdb::WriteOptions(), &b), "clear cursor state");
      },
      OnLoop([self, st] {
        if (!st->ok()) return self->Finish(*st);
        self->MarkNotClean([self] {
          if (self->tail_seq_ < 0) return self->Finish(Status::OK());
          self->pc_->ns_->OpenReader(self->pc_->log_name_, log::StartPosition::Earliest(), {},
                                     [self](Result<std::unique_ptr<log::LogReader>> r) {
                                       auto shared =
                                           std::make_shared<Result<std::unique_ptr<log::LogReader>>>(std::move(r));
                                       self->loop_->Post(self->OnLoop([self, shared] {
                                         if (!shared->ok()) return self->Finish(shared->status());
                                         self->reader_ = std::move(**shared);
                                         self->ReadMore();
                                       }));
                                     });
        });
      }));
}

void CursorRecovery::ReadMore() {
  auto self = shared_from_this();
  reader_->ReadNext(256, [self](Result<std::vector<log::LogRecord>> r) {
    auto shared = std::make_shared<Result<std::vector<log::LogRecord>>>(std::move(r));
    self->loop_->Post(self->OnLoop([self, shared] {
      if (!shared->ok()) return self->Finish(shared->status());
      auto recs = std::make_shared<std::vector<log::LogRecord>>(std::move(**shared));
      self->ApplyAll(recs, 0);
    }));
  });
}

void CursorRecovery::ApplyAll(std::shared_ptr<std::vector<log::LogRecord>> recs, size_t i) {
  auto self = shared_from_this();
  while (i < recs->size()) {
    const log::LogRecord& rec = (*recs)[i];
    if (rec.seq > tail_seq_) {
      return Finish(Corrupt(pc_->log_name_ + ": record " + std::to_string(rec.seq) + " past the tail " +
                            std::to_string(tail_seq_) + " while this writer holds the lock"));
    }
    if (i == 0 && pc_->stats_.replayed_records == 0 && rec.seq == 0) have_base_ = true;
    ++pc_->stats_.replayed_records;
    pc_->last_seq_ = rec.seq;
    pc_->last_dlsn_ = rec.dlsn;
    pc_->last_crc_ = crc32c::Value(rec.payload.view().data(), rec.payload.size());
    struct Turn {
      bool sync = true;
      bool finished = false;
    };
    auto turn = std::make_shared<Turn>();
    ApplyOne(rec, OnLoop([self, recs, i, turn] {
               if (turn->sync) {
                 turn->finished = true;
                 return;
               }
               if (self->pc_->last_seq_ == self->tail_seq_) return self->ApplyAll(recs, recs->size());
               self->ApplyAll(recs, i + 1);
             }));
    turn->sync = false;
    if (done_) return;
    if (!turn->finished) return;  // resumes from the callback
    if ((*recs)[i].seq == tail_seq_) break;
    ++i;
  }
  if (pc_->last_seq_ == tail_seq_) {
    if (!have_base_) {
      return Finish(Corrupt(pc_->log_name_ + ": the cursor log starts at record " +
                            std::to_string(tail_seq_ + 1 - pc_->stats_.replayed_records) +
                            " and holds no complete snapshot"));
    }
    DiscardSide();
    reader_.reset();
    pc_->records_since_snapshot_ = 0;
    return MarkNotClean([self] {
      DLOG_INFO << self->pc_->log_name_ << ": replayed " << self->pc_->stats_.replayed_records << " records";
      self->Finish(Status::OK());
    });
  }
  ReadMore();
}

void CursorRecovery::ApplyOne(const log::LogRecord& lr, std::function<void()> next) {
  auto rec = std::make_shared<proto::CursorLogRecord>();
  if (!rec->ParseFromArray(lr.payload.view().data(), static_cast<int>(lr.payload.size()))) {
    return Finish(Corrupt(pc_->log_name_ + ": record " + std::to_string(lr.seq) + " does not parse"));
  }
  if (rec->version() != 1) {
    return Finish(Corrupt(pc_->log_name_ + ": record " + std::to_string(lr.seq) + " has version " +
                          std::to_string(rec->version()) + " (this build knows 1)"));
  }
  PartitionCursors* pc = pc_.get();
  if (rec->has_chunk()) return ApplyChunk(rec, std::move(next));
  if (rec->has_commit()) {
    if (side_valid_ && rec->commit().snapshot_id() == side_id_ && rec->commit().chunks() == side_chunks_) {
      return Commit(std::move(next));
    }
    DLOG_WARN << pc->log_name_ << ": snapshot " << rec->commit().snapshot_id()
              << " committed but not wholly in the log; ignored";
    DiscardSide();
    return next();
  }
  if (!have_base_) return next();  // before the first complete snapshot of a truncated log
  switch (rec->kind_case()) {
    case proto::CursorLogRecord::kCreated: {
      const auto& c = rec->created();
      auto it = pc->subs_.find(c.name());
      if (it != pc->subs_.end()) {
        it->second->ResetTo(c.mark_delete());
        it->second->type_ = c.type();
      } else {
        pc->NewSub(c.name(), c.type(), c.mark_delete());
      }
      return next();
    }
    case proto::CursorLogRecord::kDeleted: {
      auto it = pc->subs_.find(rec->deleted().name());
      if (it != pc->subs_.end()) {
        it->second->DropAll();
        it->second->FlushBatch();
        pc->subs_.erase(it);
      }
      return next();
    }
    case proto::CursorLogRecord::kReset: {
      auto it = pc->subs_.find(rec->reset().name());
      if (it != pc->subs_.end()) it->second->ResetTo(rec->reset().mark_delete());
      return next();
    }
    case proto::CursorLogRecord::kAck: {
      auto it = pc->subs_.find(rec->ack().name());
      if (it == pc->subs_.end()) return next();
      auto set = ToAckSet(rec->ack());
      if (!set.ok()) return Finish(set.status());
      it->second->Apply(*set, std::move(next));
      return;
    }
    case proto::CursorLogRecord::kDedup:
      pc->has_dedup_ = true;
      pc->dedup_ = rec->dedup().data();
      return next();
    default:
      return Finish(Corrupt(pc->log_name_ + ": record " + std::to_string(lr.seq) + " of unknown kind"));
  }
}

void CursorRecovery::ApplyChunk(std::shared_ptr<proto::CursorLogRecord> rec, std::function<void()> next) {
  const proto::SnapshotChunk& c = rec->chunk();
  if (c.snapshot_id() != side_id_) {
    DiscardSide();
    side_id_ = c.snapshot_id();
    side_valid_ = c.chunk_index() == 0;
  }
  if (c.chunk_index() != side_chunks_) side_valid_ = false;
  ++side_chunks_;
  if (!side_valid_) return next();
  if (c.has_dedup()) {
    side_has_dedup_ = true;
    side_dedup_ = c.dedup();
  }
  auto batch = std::make_shared<rocksdb::WriteBatch>();
  for (const auto& piece : c.subscriptions()) {
    auto [it, inserted] = side_.try_emplace(piece.name());
    SideSub& s = it->second;
    if (inserted) {
      s.id = pc_->next_sub_id_++;
      s.mark_delete = piece.mark_delete();
    }
    s.type = piece.type();
    s.mark_delete = std::max(s.mark_delete, piece.mark_delete());
    for (const auto& pb : piece.blocks()) {
      auto b = AckBlock::FromProto(pb);
      if (!b.ok()) return Finish(b.status());
      const BlockSummary sum = b->Summarize();
      if (sum.empty()) continue;
      s.blocks[pb.index()] = sum;
      batch->Put(CursorDb::BlockKey(pc_->partition_key_, s.id, pb.index()), pb.SerializeAsString());
    }
  }
  auto st = std::make_shared<Status>();
  auto self = shared_from_this();
  pc_->db_->Submit(
      loop_,
      [batch, st](rocksdb::DB* db) {
        *st = FromRocks(db->Write(rocksdb::WriteOptions(), batch.get()), "write snapshot blocks");
      },
      OnLoop([self, st, next] {
        if (!st->ok()) return self->Finish(*st);
        next();
      }));
}

void CursorRecovery::DiscardSide() {
  if (!side_.empty()) {
    auto batch = std::make_shared<rocksdb::WriteBatch>();
    for (auto& [name, s] : side_) {
      batch->DeleteRange(CursorDb::BlockKey(pc_->partition_key_, s.id, 0),
                         CursorDb::BlockKey(pc_->partition_key_, s.id, std::numeric_limits<int64_t>::max()));
    }
    pc_->db_->Submit(
        loop_,
        [batch](rocksdb::DB* db) { IgnoreError(FromRocks(db->Write(rocksdb::WriteOptions(), batch.get()), "")); },
        nullptr);
  }
  side_.clear();
  side_id_ = -1;
  side_chunks_ = 0;
  side_valid_ = false;
  side_has_dedup_ = false;
  side_dedup_.clear();
}

void CursorRecovery::Commit(std::function<void()> next) {
  PartitionCursors* pc = pc_.get();
  for (auto& [name, sub] : pc->subs_) {
    sub->DropAll();
    sub->FlushBatch();
  }
  pc->subs_.clear();
  pc->has_dedup_ = side_has_dedup_;
  pc->dedup_ = std::move(side_dedup_);
  auto subs = std::make_shared<std::vector<SubscriptionCursor*>>();
  for (auto& [name, s] : side_) {
    SubscriptionCursor* sub = pc->NewSub(name, s.type, 0, s.id);
    sub->Install(std::move(s.blocks));
    subs->push_back(sub);
    sub->mark_delete_ = 0;
    // Normalised below: blocks under mark_delete dropped, its block masked.
    sub->type_ = s.type;
  }
  std::map<SubscriptionCursor*, int64_t> mds;
  for (auto& [name, s] : side_) mds[pc->subs_.at(name).get()] = s.mark_delete;
  side_.clear();  // now the current state: not discarded
  DiscardSide();
  have_base_ = true;
  auto self = shared_from_this();
  auto step = std::make_shared<std::function<void(size_t)>>();
  *step = [self, subs, mds, next, step](size_t i) {
    if (i == subs->size()) {
      // Breaks the step -> closure -> step cycle once this call has returned.
      self->loop_->Post([step] { *step = nullptr; });
      return next();
    }
    SubscriptionCursor* sub = (*subs)[i];
    sub->JumpTo(mds.at(sub), self->OnLoop([sub, step, i] {
      sub->Advance();
      sub->FlushBatch();
      (*step)(i + 1);
    }));
  };
  (*step)(0);
}

}  // namespace dlog::broker
