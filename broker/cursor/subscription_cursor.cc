#include "broker/cursor/subscription_cursor.h"

#include <algorithm>
#include <limits>

#include "broker/cursor/partition_cursors.h"
#include "common/check.h"
#include "common/logging.h"
#include "cursor.pb.h"

namespace dlog::broker {

namespace {
// What a freshly allocated or loaded block is charged before its real size is known.
constexpr int64_t kBlockCharge = static_cast<int64_t>(sizeof(AckBlock));
}  // namespace

SubscriptionCursor::SubscriptionCursor(PartitionCursors* owner, std::string name, int32_t type, uint64_t id,
                                       int64_t mark_delete)
    : owner_(owner),
      db_(owner->db_),
      cache_(owner->cache_),
      loop_(owner->loop_),
      partition_(owner->partition_key_),
      name_(std::move(name)),
      type_(type),
      id_(id),
      mark_delete_(mark_delete),
      batch_(std::make_unique<rocksdb::WriteBatch>()) {}

SubscriptionCursor::~SubscriptionCursor() {
  *alive_ = false;
  for (auto& [index, e] : blocks_) {
    if (e.in_lru) cache_->Remove(e.lru);
    if (e.block) {
      cache_->Release(e.charge);
      cache_->CountResident(-1);
    }
  }
  FlushBatch();
}

// ---------------------------------------------------------------- public API

void SubscriptionCursor::Ack(std::span<const AckItem> items, std::function<void(Status)> cb) {
  auto set = std::make_shared<AckSet>();
  std::vector<int64_t> whole;
  std::map<int64_t, AckSet::Partial> partial;
  for (const AckItem& it : items) {
    if (it.seq < 0) {
      return cb(Status::Error(CommonErrc::kInvalidArgument, "ack of negative seq " + std::to_string(it.seq)));
    }
    if (it.batch_index < 0 || it.batch_size <= 1) {
      whole.push_back(it.seq);
      continue;
    }
    if (Status st = ValidatePartial(it.seq, it.batch_size, 0); !st.ok()) return cb(st);
    if (it.batch_index >= it.batch_size) {
      return cb(Status::Error(CommonErrc::kInvalidArgument, "batch index " + std::to_string(it.batch_index) +
                                                                " of record " + std::to_string(it.seq) +
                                                                " not below its batch size"));
    }
    AckSet::Partial& p = partial[it.seq];
    p.seq = it.seq;
    p.batch_size = std::max(p.batch_size, it.batch_size);
    p.words.resize(static_cast<size_t>((p.batch_size + 63) / 64), 0);
    p.words[static_cast<size_t>(it.batch_index / 64)] |= uint64_t{1} << (it.batch_index % 64);
  }
  std::sort(whole.begin(), whole.end());
  for (int64_t s : whole) {
    if (!set->ranges.empty() && set->ranges.back().second + 1 >= s) {
      set->ranges.back().second = std::max(set->ranges.back().second, s);
    } else {
      set->ranges.emplace_back(s, s);
    }
  }
  for (auto& [seq, p] : partial) set->partials.push_back(std::move(p));
  owner_->SubmitAcks(this, std::move(set), std::move(cb));
}

void SubscriptionCursor::AckCumulative(AckItem upto, std::function<void(Status)> cb) {
  if (upto.seq < 0) {
    return cb(Status::Error(CommonErrc::kInvalidArgument, "ack of negative seq " + std::to_string(upto.seq)));
  }
  auto set = std::make_shared<AckSet>();
  set->has_mark_delete = true;
  if (upto.batch_index < 0 || upto.batch_size <= 1) {
    set->mark_delete = upto.seq + 1;
  } else {
    if (Status st = ValidatePartial(upto.seq, upto.batch_size, 0); !st.ok()) return cb(st);
    if (upto.batch_index >= upto.batch_size) {
      return cb(Status::Error(CommonErrc::kInvalidArgument, "batch index not below its batch size"));
    }
    set->mark_delete = upto.seq;
    set->partials.push_back(AckSet::Partial{upto.seq, upto.batch_size, IndexesUpTo(upto.batch_index)});
  }
  owner_->SubmitAcks(this, std::move(set), std::move(cb));
}

void SubscriptionCursor::Reset(int64_t mark_delete, std::function<void(Status)> cb) {
  if (mark_delete < 0) {
    return cb(Status::Error(CommonErrc::kInvalidArgument, "negative mark-delete " + std::to_string(mark_delete)));
  }
  owner_->SubmitReset(this, mark_delete, std::move(cb));
}

void SubscriptionCursor::Prefetch(int64_t from, int64_t to, std::function<void()> done) {
  auto pending = std::make_shared<int64_t>(1);
  auto finish = [pending, done = std::move(done)] {
    if (--*pending == 0) done();
  };
  if (from >= 0 && to >= from) {
    for (int64_t i = BlockOf(from); i <= BlockOf(to); ++i) {
      ++range_pins_[i];
      auto it = blocks_.find(i);
      if (it == blocks_.end()) continue;
      Entry& e = it->second;
      if (e.in_lru) {
        cache_->Remove(e.lru);
        e.in_lru = false;
      }
      if (e.block && !e.loading) continue;
      ++*pending;
      e.waiters.push_back(finish);
      if (!e.loading) StartLoad(i);
    }
  }
  // Never inline.
  loop_->Post(finish);
}

void SubscriptionCursor::Unpin(int64_t from, int64_t to) {
  if (from < 0 || to < from) return;
  for (int64_t i = BlockOf(from); i <= BlockOf(to); ++i) {
    auto pit = range_pins_.find(i);
    DLOG_CHECK(pit != range_pins_.end()) << name_ << ": Unpin of block " << i << " that no Prefetch pinned";
    if (--pit->second == 0) range_pins_.erase(pit);
    auto it = blocks_.find(i);
    if (it != blocks_.end()) MaybeToLru(i, it->second);
  }
}

SubscriptionCursor::State SubscriptionCursor::Check(int64_t seq, std::vector<uint64_t>* acked_bits) const {
  if (seq < mark_delete_) return State::kAcked;
  auto it = blocks_.find(BlockOf(seq));
  if (it == blocks_.end()) return State::kUnacked;
  const Entry& e = it->second;
  if (e.block == nullptr || e.loading) {
    // Not resident: an ack made or reloaded it after the Prefetch. With no
    // acks applied yet (a new block), the record is unacked; otherwise the
    // caller must prefetch again (a client's ack must never crash us).
    return e.summary.empty() && e.block == nullptr ? State::kUnacked : State::kUnknown;
  }
  if (e.block->IsAcked(seq)) return State::kAcked;
  const PartialBits* p = e.block->Partial(seq);
  if (p == nullptr) return State::kUnacked;
  if (acked_bits != nullptr) *acked_bits = p->words;
  return State::kPartial;
}

// ---------------------------------------------------------------- residency

bool SubscriptionCursor::Pin(int64_t index, bool create, std::function<void()> ready, bool* absent) {
  if (absent != nullptr) *absent = false;
  auto it = blocks_.find(index);
  if (it == blocks_.end()) {
    if (!create) {
      if (absent != nullptr) *absent = true;
      return false;
    }
    Entry& e = blocks_[index];
    e.loading = true;
    e.op_pins = 1;
    e.load_id = ++next_load_id_;
    e.waiters.push_back(std::move(ready));
    const uint64_t id = e.load_id;
    std::weak_ptr<bool> alive = alive_;
    cache_->Acquire(loop_, kBlockCharge, [this, alive, index, id] {
      if (alive.expired()) {
        cache_->Release(kBlockCharge);
        return;
      }
      auto it2 = blocks_.find(index);
      if (it2 == blocks_.end() || it2->second.load_id != id || !it2->second.loading) {
        cache_->Release(kBlockCharge);
        return;
      }
      Entry& e2 = it2->second;
      e2.block = std::make_unique<AckBlock>(index);
      e2.charge = kBlockCharge;
      e2.loading = false;
      cache_->CountResident(1);
      for (auto& w : e2.waiters) loop_->Post(std::move(w));
      e2.waiters.clear();
    });
    return false;
  }
  Entry& e = it->second;
  ++e.op_pins;
  if (e.in_lru) {
    cache_->Remove(e.lru);
    e.in_lru = false;
  }
  if (e.block && !e.loading) return true;
  e.waiters.push_back(std::move(ready));
  if (!e.loading) StartLoad(index);
  return false;
}

void SubscriptionCursor::UnpinOp(int64_t index) {
  auto it = blocks_.find(index);
  if (it == blocks_.end()) return;
  DLOG_CHECK(it->second.op_pins > 0);
  --it->second.op_pins;
  if (it->second.op_pins == 0 && it->second.block && it->second.block->empty() && !it->second.loading) {
    Erase(it);
    return;
  }
  MaybeToLru(index, it->second);
}

void SubscriptionCursor::MaybeToLru(int64_t index, Entry& e) {
  if (e.in_lru || !e.block || e.loading || e.op_pins > 0 || range_pins_.count(index) > 0) return;
  e.lru = cache_->Insert(this, index);
  e.in_lru = true;
}

void SubscriptionCursor::StartLoad(int64_t index) {
  Entry& e = blocks_.at(index);
  e.loading = true;
  e.load_id = ++next_load_id_;
  const uint64_t id = e.load_id;
  std::weak_ptr<bool> alive = alive_;
  cache_->Acquire(loop_, kBlockCharge, [this, alive, index, id] {
    if (alive.expired()) {
      cache_->Release(kBlockCharge);
      return;
    }
    auto value = std::make_shared<std::string>();
    auto st = std::make_shared<Status>();
    std::string key = CursorDb::BlockKey(partition_, id_, index);
    db_->Submit(
        loop_,
        [key, value, st](rocksdb::DB* db) {
          rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key, value.get());
          if (s.IsNotFound()) {
            value->clear();
          } else {
            *st = FromRocks(s, "read cursor block");
          }
        },
        [this, alive, index, id, value, st] {
          if (alive.expired()) {
            cache_->Release(kBlockCharge);
            return;
          }
          OnLoaded(index, id, kBlockCharge, *st, std::move(*value));
        });
  });
}

void SubscriptionCursor::OnLoaded(int64_t index, uint64_t load_id, int64_t charge, Status st, std::string value) {
  auto it = blocks_.find(index);
  if (it == blocks_.end() || it->second.load_id != load_id || !it->second.loading) {
    cache_->Release(charge);  // dropped meanwhile
    return;
  }
  cache_->CountLoad();
  Entry& e = it->second;
  auto block = std::make_unique<AckBlock>(index);
  if (st.ok() && !value.empty()) {
    proto::CursorBlock pb;
    if (!pb.ParseFromString(value)) {
      st = Status::Error(CommonErrc::kCorruption,
                         "cursor block " + std::to_string(index) + " of " + name_ + " does not parse");
    } else {
      auto b = AckBlock::FromProto(pb);
      if (!b.ok()) {
        st = b.status();
      } else {
        *block = std::move(*b);
      }
    }
  } else if (st.ok()) {
    st = Status::Error(CommonErrc::kCorruption,
                       "cursor block " + std::to_string(index) + " of " + name_ + " is missing from the cursor db");
  }
  if (!st.ok()) owner_->Fail(st);
  block->ClearBelow(mark_delete_);
  e.block = std::move(block);
  e.loading = false;
  e.charge = charge;
  cache_->CountResident(1);
  SetSummary(it, e.block->Summarize());
  const int64_t real = e.block->MemoryBytes();
  auto waiters = std::move(e.waiters);
  e.waiters.clear();
  // Pinned by its waiters or a Prefetch range, or in the LRU; the adjust may evict others.
  if (e.op_pins == 0 && range_pins_.count(index) == 0) MaybeToLru(index, e);
  cache_->Adjust(real - charge);
  auto it2 = blocks_.find(index);
  if (it2 != blocks_.end() && it2->second.block) it2->second.charge = real;
  for (auto& w : waiters) loop_->Post(std::move(w));
}

void SubscriptionCursor::Evict(int64_t index) {
  auto it = blocks_.find(index);
  DLOG_CHECK(it != blocks_.end() && it->second.in_lru);
  Entry& e = it->second;
  e.in_lru = false;
  const int64_t charge = e.charge;
  cache_->CountResident(-1);
  if (e.dirty) {
    WriteBlock(index, e.block.get());
    e.dirty = false;
    e.block.reset();
    e.charge = 0;
    cache_->WriteStarted(charge);
    FlushBatch(charge);
  } else {
    e.block.reset();
    e.charge = 0;
    cache_->Release(charge);
  }
  if (e.summary.empty()) blocks_.erase(it);
}

// ---------------------------------------------------------------- state changes

void SubscriptionCursor::SetSummary(Blocks::iterator it, BlockSummary s) {
  const BlockSummary old = it->second.summary;
  if (old == s) return;
  const int64_t index = it->first;
  acked_beyond_ += s.count - old.count;
  holes_ += s.runs - old.runs;
  // A run crossing a block boundary counts once.
  if (it != blocks_.begin()) {
    auto prev = std::prev(it);
    if (prev->first == index - 1 && prev->second.summary.last) holes_ -= (s.first() ? 1 : 0) - (old.first() ? 1 : 0);
  }
  auto next = std::next(it);
  if (next != blocks_.end() && next->first == index + 1 && next->second.summary.first()) {
    holes_ -= (s.last ? 1 : 0) - (old.last ? 1 : 0);
  }
  it->second.summary = s;
}

void SubscriptionCursor::Erase(Blocks::iterator it) {
  SetSummary(it, BlockSummary{});
  Entry& e = it->second;
  if (e.in_lru) cache_->Remove(e.lru);
  if (e.block) {
    cache_->Release(e.charge);
    cache_->CountResident(-1);
  }
  // Waiters of a load or allocation in flight (Prefetch) are told now; the
  // completion finds the entry gone and releases its charge.
  for (auto& w : e.waiters) loop_->Post(std::move(w));
  batch_->Delete(CursorDb::BlockKey(partition_, id_, it->first));
  blocks_.erase(it);
}

void SubscriptionCursor::DropBelow(int64_t index) {
  while (!blocks_.empty() && blocks_.begin()->first < index) Erase(blocks_.begin());
  batch_->DeleteRange(CursorDb::BlockKey(partition_, id_, 0), CursorDb::BlockKey(partition_, id_, index));
}

void SubscriptionCursor::DropAll() {
  while (!blocks_.empty()) Erase(blocks_.begin());
  batch_->DeleteRange(CursorDb::BlockKey(partition_, id_, 0),
                      CursorDb::BlockKey(partition_, id_, std::numeric_limits<int64_t>::max()));
  acked_beyond_ = 0;
  holes_ = 0;
}

void SubscriptionCursor::ResetTo(int64_t mark_delete) {
  DropAll();
  mark_delete_ = mark_delete;
  FlushBatch();
}

void SubscriptionCursor::Apply(std::shared_ptr<AckSet> set, std::function<void()> done) {
  auto then = [this, set, done = std::move(done)]() mutable {
    // The blocks the ranges and partials touch, ascending.
    auto todo = std::make_shared<std::vector<int64_t>>();
    for (const auto& [a, b] : set->ranges) {
      const int64_t lo = std::max(a, mark_delete_);
      if (b < lo) continue;
      for (int64_t i = BlockOf(lo); i <= BlockOf(b); ++i) todo->push_back(i);
    }
    for (const auto& p : set->partials) {
      if (p.seq >= mark_delete_) todo->push_back(BlockOf(p.seq));
    }
    std::sort(todo->begin(), todo->end());
    todo->erase(std::unique(todo->begin(), todo->end()), todo->end());
    ApplyBlocks(set, todo, 0, std::move(done));
  };
  if (set->has_mark_delete && set->mark_delete > mark_delete_) {
    JumpTo(set->mark_delete, std::move(then));
  } else {
    then();
  }
}

void SubscriptionCursor::ApplyBlocks(std::shared_ptr<AckSet> set, std::shared_ptr<std::vector<int64_t>> todo, size_t i,
                                     std::function<void()> done) {
  std::weak_ptr<bool> alive = alive_;
  for (; i < todo->size(); ++i) {
    const int64_t index = (*todo)[i];
    auto resume = [this, alive, set, todo, i, done]() mutable {
      if (alive.expired()) return done();
      auto it = blocks_.find((*todo)[i]);
      if (it != blocks_.end() && it->second.block) ApplyToBlock(*set, (*todo)[i], it->second.block.get());
      UnpinOp((*todo)[i]);
      ApplyBlocks(set, todo, i + 1, std::move(done));
    };
    if (!Pin(index, /*create=*/true, resume)) return;  // resumes when resident
    ApplyToBlock(*set, index, blocks_.at(index).block.get());
    UnpinOp(index);
  }
  Advance();
  FlushBatch();
  done();
}

void SubscriptionCursor::ApplyToBlock(const AckSet& set, int64_t index, AckBlock* b) {
  bool changed = false;
  const int64_t lo_seq = std::max(BlockStart(index), mark_delete_);
  const int64_t hi_seq = BlockStart(index + 1) - 1;
  for (const auto& [a, z] : set.ranges) {
    if (z < lo_seq || a > hi_seq) continue;
    changed = b->AckRange(std::max(a, lo_seq), std::min(z, hi_seq)) > 0 || changed;
  }
  for (const auto& p : set.partials) {
    if (p.seq < lo_seq || p.seq > hi_seq) continue;
    changed = b->AckIndexes(p.seq, p.batch_size, p.words) || changed;
  }
  auto it = blocks_.find(index);
  if (changed) it->second.dirty = true;
  SetSummary(it, b->Summarize());
  const int64_t real = b->MemoryBytes();
  if (real != it->second.charge) {
    const int64_t delta = real - it->second.charge;
    it->second.charge = real;
    cache_->Adjust(delta);  // the block is pinned: others are evicted
  }
}

void SubscriptionCursor::JumpTo(int64_t mark_delete, std::function<void()> done) {
  if (mark_delete <= mark_delete_) return done();
  const int64_t index = BlockOf(mark_delete);
  DropBelow(index);
  mark_delete_ = mark_delete;
  std::weak_ptr<bool> alive = alive_;
  auto finish = [this, index, mark_delete, done]() mutable {
    auto it = blocks_.find(index);
    if (it != blocks_.end() && it->second.block) {
      it->second.block->ClearBelow(mark_delete);
      it->second.dirty = true;
      SetSummary(it, it->second.block->Summarize());
    }
    UnpinOp(index);
    done();
  };
  bool absent = false;
  if (Pin(
          index, /*create=*/false,
          [alive, finish, done]() mutable {
            if (alive.expired()) return done();
            finish();
          },
          &absent)) {
    finish();
  } else if (absent) {
    done();
  }
}

void SubscriptionCursor::Advance() {
  for (;;) {
    const int64_t index = BlockOf(mark_delete_);
    auto it = blocks_.find(index);
    if (it == blocks_.end()) return;
    Entry& e = it->second;
    if (e.block && !e.loading) {
      const int64_t f = e.block->FirstUnackedFrom(mark_delete_);
      if (f == mark_delete_) return;
      mark_delete_ = f;
      if (f < e.block->end_seq()) {
        e.block->ClearBelow(f);
        e.dirty = true;
        SetSummary(it, e.block->Summarize());
        if (e.summary.empty() && e.op_pins == 0) Erase(it);
        return;
      }
      Erase(it);
      continue;
    }
    // Not resident: its summary describes the records >= mark_delete.
    if (mark_delete_ != BlockStart(index) || e.summary.prefix == 0) return;
    if (e.summary.prefix == kBlockRecords) {
      mark_delete_ = BlockStart(index + 1);
      Erase(it);
      continue;
    }
    // Lands inside: the leading run goes under mark_delete; the stored copy
    // still has it and is masked when loaded.
    BlockSummary s = e.summary;
    mark_delete_ += s.prefix;
    s.count -= s.prefix;
    s.runs -= 1;
    s.prefix = 0;
    SetSummary(it, s);
    if (s.empty()) Erase(it);
    return;
  }
}

// ---------------------------------------------------------------- RocksDB

void SubscriptionCursor::WriteBlock(int64_t index, const AckBlock* b) {
  const std::string key = CursorDb::BlockKey(partition_, id_, index);
  if (b == nullptr || b->empty()) {
    batch_->Delete(key);
    return;
  }
  proto::CursorBlock pb;
  b->ToProto(&pb);
  batch_->Put(key, pb.SerializeAsString());
}

void SubscriptionCursor::FlushBatch(int64_t held) {
  if (batch_->Count() == 0 && held == 0) return;
  auto batch = std::make_shared<rocksdb::WriteBatch>(std::move(*batch_));
  batch_ = std::make_unique<rocksdb::WriteBatch>();
  auto st = std::make_shared<Status>();
  std::weak_ptr<bool> alive = alive_;
  BlockCache* cache = cache_;
  PartitionCursors* owner = owner_;
  db_->Submit(
      loop_,
      [batch, st](rocksdb::DB* db) {
        rocksdb::WriteOptions wo;
        *st = FromRocks(db->Write(wo, batch.get()), "write cursor blocks");
      },
      [cache, held, st, alive, owner] {
        if (held > 0) cache->WriteDone(held);
        if (!st->ok() && !alive.expired()) owner->Fail(*st);
      });
}

void SubscriptionCursor::WriteDirty() {
  for (auto& [index, e] : blocks_) {
    if (e.block && e.dirty && !e.loading) {
      WriteBlock(index, e.block.get());
      e.dirty = false;
    }
  }
}

void SubscriptionCursor::Install(std::map<int64_t, BlockSummary> summaries) {
  for (auto& [index, s] : summaries) {
    auto [it, inserted] = blocks_.try_emplace(index);
    DLOG_CHECK(inserted);
    SetSummary(it, s);
  }
}

}  // namespace dlog::broker
