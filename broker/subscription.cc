// Subscription: consumers, dispatch with permits, acks, redelivery.
// See broker/README.md ("Dispatch").
#include <algorithm>
#include <bit>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/logging.h"
#include "logstore/log/errors.h"
#include "logstore/log/namespace.h"
#include "protocol/message_batch.h"

namespace dlog::broker {
namespace {

constexpr int64_t kMaxPermits = int64_t{1} << 30;
constexpr int kRingPointsPerConsumer = 64;
constexpr int kMaxUnknownSizeIndexAcks = 1000;

bool BitSet(const std::vector<uint64_t>& bits, int32_t i) {
  const size_t w = static_cast<size_t>(i) / 64;
  return w < bits.size() && ((bits[w] >> (i % 64)) & 1u) != 0;
}

void SetBit(std::vector<uint64_t>* bits, int32_t i) {
  const size_t w = static_cast<size_t>(i) / 64;
  if (bits->size() <= w) bits->resize(w + 1, 0);
  (*bits)[w] |= uint64_t{1} << (i % 64);
}

int32_t CountBits(const std::vector<uint64_t>& bits, int32_t n) {
  int32_t c = 0;
  for (int32_t i = 0; i < n; ++i) c += BitSet(bits, i) ? 1 : 0;
  return c;
}

}  // namespace

Subscription::Subscription(Partition* part, std::string name, proto::SubscriptionType type, SubscriptionCursor* cursor,
                           int64_t start_seq)
    : part_(part),
      name_(std::move(name)),
      type_(type),
      cursor_(cursor),
      nd_mark_(start_seq),
      retry_timer_(part->ctx()->loop) {
  read_pos_ = cursor_ != nullptr ? cursor_->mark_delete() : start_seq;
  persisted_md_ = read_pos_;  // a recovered or just created cursor is persisted
}

Subscription::~Subscription() {
  *alive_ = false;
  retry_timer_.Stop();
}

int64_t Subscription::mark_delete() const { return cursor_ != nullptr ? cursor_->mark_delete() : nd_mark_; }

Status Subscription::CanAdd(proto::SubscriptionType type) const {
  if (closed_) return Status::Error(CommonErrc::kUnavailable, "subscription '" + name_ + "' is closing");
  if (!consumers_.empty() && type != type_) {
    return Status::Error(CommonErrc::kAlreadyExists, "subscription '" + name_ + "' is " +
                                                         proto::SubscriptionType_Name(type_) + " with " +
                                                         std::to_string(consumers_.size()) + " consumer(s); asked " +
                                                         proto::SubscriptionType_Name(type));
  }
  if (type == proto::SUB_EXCLUSIVE && !consumers_.empty()) {
    return Status::Error(CommonErrc::kAlreadyExists, "exclusive subscription '" + name_ + "' already has a consumer");
  }
  return Status::OK();
}

void Subscription::AddConsumer(std::shared_ptr<ConsumerH> c, proto::SubscriptionType type) {
  if (consumers_.empty() && type != type_) {
    // A subscription without consumers may change type (as in Pulsar). Its
    // dispatch state is per consumer, and there is none.
    type_ = type;
    ring_.clear();
    hash_outstanding_.clear();
  }
  c->order = next_order_++;
  consumers_.push_back(c);
  if (type_ == proto::SUB_FAILOVER || type_ == proto::SUB_EXCLUSIVE) {
    UpdateActive();
    if (type_ == proto::SUB_FAILOVER && !c->active) {
      proto::BaseCommand& out = part_->ctx()->Out();
      auto* a = out.mutable_active_consumer_change();
      a->set_consumer_id(c->id);
      a->set_is_active(false);
      part_->ctx()->Send(c->conn, out);
    }
  }
  if (type_ == proto::SUB_KEY_SHARED) RebuildRing();
  Pump();
}

void Subscription::RedeliverAllOf(ConsumerH* c) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.consumer == c) {
      const int64_t seq = it->first;
      Pending p = std::move(it->second);
      it = pending_.erase(it);
      ToReplay(seq, std::move(p), true);
    } else {
      ++it;
    }
  }
}

void Subscription::RemoveConsumer(ConsumerH* c) {
  RedeliverAllOf(c);
  for (auto it = hash_outstanding_.begin(); it != hash_outstanding_.end();) {
    it = it->second.first == c ? hash_outstanding_.erase(it) : std::next(it);
  }
  consumers_.erase(std::remove_if(consumers_.begin(), consumers_.end(),
                                  [c](const std::shared_ptr<ConsumerH>& x) { return x.get() == c; }),
                   consumers_.end());
  if (type_ == proto::SUB_FAILOVER || type_ == proto::SUB_EXCLUSIVE) UpdateActive();
  if (type_ == proto::SUB_KEY_SHARED) RebuildRing();
  Pump();
}

// Exclusive: the only consumer. Failover: among the consumers with the best
// (lowest) priority level, ordered by arrival, the one at index partition %
// count, so the partitions of a topic spread over the consumers. A change is
// announced to every consumer; what the previous active one had not acked is
// redelivered to the new one (in log order, before anything newer).
void Subscription::UpdateActive() {
  ConsumerH* want = nullptr;
  if (!consumers_.empty()) {
    if (type_ == proto::SUB_EXCLUSIVE) {
      want = consumers_.front().get();
    } else {
      int32_t best = consumers_.front()->priority;
      for (auto& c : consumers_) best = std::min(best, c->priority);
      std::vector<ConsumerH*> group;
      for (auto& c : consumers_) {
        if (c->priority == best) group.push_back(c.get());
      }
      std::sort(group.begin(), group.end(), [](ConsumerH* a, ConsumerH* b) { return a->order < b->order; });
      want = group[static_cast<size_t>(part_->index()) % group.size()];
    }
  }
  ConsumerH* was = nullptr;
  for (auto& c : consumers_) {
    if (c->active) was = c.get();
  }
  if (want == was) return;
  if (was != nullptr) {
    was->active = false;
    RedeliverAllOf(was);
  }
  if (want != nullptr) want->active = true;
  if (type_ != proto::SUB_FAILOVER) return;
  for (auto& c : consumers_) {
    if (c.get() != want && c.get() != was) continue;
    proto::BaseCommand& out = part_->ctx()->Out();
    auto* a = out.mutable_active_consumer_change();
    a->set_consumer_id(c->id);
    a->set_is_active(c->active);
    part_->ctx()->Send(c->conn, out);
  }
}

void Subscription::RebuildRing() {
  ring_.clear();
  for (auto& c : consumers_) {
    for (int i = 0; i < kRingPointsPerConsumer; ++i) {
      ring_.emplace_back(KeyHash(c->name + "#" + std::to_string(c->order) + "#" + std::to_string(i)), c.get());
    }
  }
  std::sort(ring_.begin(), ring_.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->order < b.second->order;
  });
}

ConsumerH* Subscription::KeyOwner(uint32_t hash) const {
  if (ring_.empty()) return nullptr;
  auto it = std::lower_bound(ring_.begin(), ring_.end(), hash,
                             [](const std::pair<uint32_t, ConsumerH*>& p, uint32_t h) { return p.first < h; });
  if (it == ring_.end()) it = ring_.begin();
  return it->second;
}

// Permits: a record goes only when the consumer has permits for all its
// (unacked) messages, except a batch larger than the largest window the
// consumer ever granted, which could never fit: it goes once the whole
// window is free (the one case where a consumer gets more than it asked
// for, by that one batch).
bool Subscription::CanTake(const ConsumerH* c, int32_t need) const {
  if (c == nullptr || c->permits < std::min<int64_t>(need, std::max<int64_t>(1, c->window))) return false;
  return CanTake(c);
}

bool Subscription::CanTake(const ConsumerH* c) const {
  // Readers (non-durable) never ack: only permits bound what they get.
  const int64_t max_unacked = cursor_ != nullptr ? part_->ctx()->opts.max_unacked_per_consumer : 0;
  return c != nullptr && !c->closed && c->permits > 0 && (max_unacked <= 0 || c->unacked < max_unacked);
}

ConsumerH* Subscription::Choose(const RecordInfo& r, int32_t need) {
  switch (type_) {
    case proto::SUB_EXCLUSIVE:
    case proto::SUB_FAILOVER:
      for (auto& c : consumers_) {
        if (c->active) return CanTake(c.get(), need) ? c.get() : nullptr;
      }
      return nullptr;
    case proto::SUB_SHARED:
      for (size_t i = 0; i < consumers_.size(); ++i) {
        ConsumerH* c = consumers_[(rr_ + i) % consumers_.size()].get();
        if (CanTake(c, need)) {
          rr_ = (rr_ + i + 1) % consumers_.size();
          return c;
        }
      }
      return nullptr;
    case proto::SUB_KEY_SHARED: {
      ConsumerH* c = KeyOwner(r.key_hash);
      if (!CanTake(c, need)) return nullptr;
      // Draining hashes: messages of this hash still outstanding at another
      // consumer hold it back until they are acked or redelivered.
      auto it = hash_outstanding_.find(r.key_hash);
      if (it != hash_outstanding_.end() && it->second.first != c) return nullptr;
      return c;
    }
    default:
      return nullptr;
  }
}

void Subscription::Pump() {
  if (closed_) return;
  if (in_pump_) {
    pump_again_ = true;
    return;
  }
  in_pump_ = true;
  do {
    pump_again_ = false;
    PumpRound();
  } while (pump_again_ && !prefetching_ && !closed_);
  in_pump_ = false;
}

void Subscription::CheckRetry() {
  if (retry_timer_.active() || closed_) return;
  std::weak_ptr<bool> alive = alive_;
  retry_timer_.Start(50, [this, alive] {
    if (auto a = alive.lock(); a && *a) Pump();
  });
}

void Subscription::PumpRound() {
  if (prefetching_ || seeking_ > 0 || consumers_.empty()) return;
  if (!part_->Serving()) {
    // The lease rule: nothing is dispatched without recent metadata contact.
    if (part_->state() == Partition::State::kReady) CheckRetry();
    return;
  }
  bool any_capacity = false;
  for (auto& c : consumers_) {
    // Exclusive/Failover: only the active consumer takes anything.
    if (type_ == proto::SUB_EXCLUSIVE || type_ == proto::SUB_FAILOVER) {
      if (c->active) any_capacity = CanTake(c.get());
    } else {
      any_capacity = any_capacity || CanTake(c.get());
    }
  }
  if (!any_capacity) return;

  const size_t batch = part_->ctx()->opts.dispatch_batch;
  work_.clear();
  for (auto& [seq, r] : replay_) {
    if (work_.size() >= batch) break;
    work_.push_back({seq, true, {}});
  }
  size_t fresh = 0;
  while (work_.size() < batch && replay_.size() + fresh < part_->ctx()->opts.max_replay_records) {
    RecordInfo r;
    if (!NextFresh(&r)) break;
    const int64_t seq = r.seq;
    work_.push_back({seq, false, std::move(r)});
    ++fresh;
  }
  if (work_.empty()) return;
  if (cursor_ == nullptr) {
    DispatchWork();
    return;
  }
  int64_t lo = work_.front().seq, hi = work_.front().seq;
  for (const Work& w : work_) {
    lo = std::min(lo, w.seq);
    hi = std::max(hi, w.seq);
  }
  lo = std::max(lo, cursor_->mark_delete());
  if (lo > hi) {
    DispatchWork();
    return;
  }
  prefetching_ = true;
  prefetch_lo_ = lo;
  prefetch_hi_ = hi;
  const uint64_t gen = gen_;
  std::weak_ptr<bool> alive = alive_;
  cursor_->Prefetch(lo, hi, [this, alive, gen, lo, hi] {
    auto a = alive.lock();
    if (!a || !*a) return;
    prefetching_ = false;
    // The lease may have run out while the blocks loaded: nothing goes then
    // (fresh records wait in the redelivery queue).
    if (gen == gen_ && !closed_) {
      if (part_->Serving()) {
        DispatchWork();
      } else {
        for (Work& w : work_) {
          if (!w.from_replay) replay_[w.seq] = Replay{std::move(w.rec), 0};
        }
        work_.clear();
        CheckRetry();
      }
    }
    cursor_->Unpin(lo, hi);
    if (!in_pump_) Pump();
  });
}

void Subscription::DispatchWork() {
  bool stop = false;
  bool progress = false;
  std::vector<uint32_t> held_hashes;
  std::vector<uint64_t> bits;
  const int64_t md = mark_delete();
  const bool ordered = type_ == proto::SUB_EXCLUSIVE || type_ == proto::SUB_FAILOVER;
  if (type_ == proto::SUB_KEY_SHARED) {
    // Records queued for redelivery while this work was being prepared (a
    // consumer left) hold their keys: nothing newer of those keys goes first.
    std::vector<int64_t> in_work;
    for (const Work& w : work_) {
      if (w.from_replay) in_work.push_back(w.seq);
    }
    for (const auto& [seq, r] : replay_) {
      if (!std::binary_search(in_work.begin(), in_work.end(), seq)) held_hashes.push_back(r.rec.key_hash);
    }
  }
  for (Work& w : work_) {
    // Ordered types: a record queued for redelivery meanwhile (a consumer
    // left while this work was prepared) goes before anything newer.
    if (ordered && !stop && !replay_.empty() && replay_.begin()->first < w.seq) stop = true;
    RecordInfo* rec = &w.rec;
    int32_t count = 0;
    if (w.from_replay) {
      auto it = replay_.find(w.seq);
      if (it == replay_.end()) continue;  // acked or dispatched meanwhile
      rec = &it->second.rec;
      count = it->second.redelivery_count;
    }
    if (pending_.count(w.seq) != 0) {
      if (w.from_replay) replay_.erase(w.seq);
      continue;
    }
    bits.clear();
    bool acked = w.seq < md;
    if (!acked && cursor_ != nullptr) {
      const SubscriptionCursor::State st = cursor_->Check(w.seq, &bits);
      if (st == SubscriptionCursor::State::kUnknown) {
        // Its block is loading again: decide next round, after a new prefetch.
        if (ordered) stop = true;
        if (type_ == proto::SUB_KEY_SHARED) held_hashes.push_back(rec->key_hash);
        if (!w.from_replay) replay_[w.seq] = Replay{std::move(w.rec), 0};
        pump_again_ = true;
        continue;
      }
      acked = st == SubscriptionCursor::State::kAcked;
    }
    if (acked) {
      if (w.from_replay) replay_.erase(w.seq);
      progress = true;
      continue;
    }
    ConsumerH* c = nullptr;
    if (!stop) {
      const bool key_held = type_ == proto::SUB_KEY_SHARED &&
                            std::find(held_hashes.begin(), held_hashes.end(), rec->key_hash) != held_hashes.end();
      if (!key_held) c = Choose(*rec, std::max(1, rec->num_messages - CountBits(bits, rec->num_messages)));
    }
    if (c == nullptr) {
      if (type_ == proto::SUB_KEY_SHARED) {
        held_hashes.push_back(rec->key_hash);  // later messages of this key wait behind it
      } else {
        stop = true;  // order: nothing after it goes either
      }
      if (!w.from_replay) replay_[w.seq] = Replay{std::move(w.rec), 0};
      continue;
    }
    RecordInfo send = *rec;
    if (w.from_replay) replay_.erase(w.seq);
    SendTo(c, send, count, bits, CountBits(bits, send.num_messages));
    progress = true;
  }
  work_.clear();
  if (progress) pump_again_ = true;
}

bool Subscription::NextFresh(RecordInfo* out) {
  const int64_t end = part_->durable_end();
  if (read_pos_ >= end) return false;
  if (const RecordInfo* c = part_->cache().Find(read_pos_)) {
    *out = *c;
    ++read_pos_;
    return true;
  }
  while (!readahead_.empty() && readahead_.front().seq < read_pos_) readahead_.pop_front();
  if (!readahead_.empty()) {
    if (readahead_.front().seq > read_pos_) {
      // Records before it are gone (truncated by retention).
      read_pos_ = readahead_.front().seq;
    }
    *out = std::move(readahead_.front());
    readahead_.pop_front();
    ++read_pos_;
    return true;
  }
  StartRead();
  return false;
}

void Subscription::StartRead() {
  if (read_in_flight_ || opening_reader_ || closed_) return;
  std::weak_ptr<bool> alive = alive_;
  net::EventLoop* loop = part_->ctx()->loop;
  auto on_records = [this, alive, loop](uint64_t gen) {
    return [this, alive, loop, gen](Result<std::vector<log::LogRecord>> r) {
      auto box = std::make_shared<Result<std::vector<log::LogRecord>>>(std::move(r));
      loop->Post([this, alive, gen, box] {
        auto a = alive.lock();
        if (!a || !*a) return;
        read_in_flight_ = false;
        if (gen != reader_gen_) return;
        if (!box->ok()) {
          DLOG_WARN << "subscription '" << name_ << "' of " << part_->name() << ": read: " << box->status().ToString();
          reader_.reset();
          CheckRetry();
          return;
        }
        for (log::LogRecord& rec : box->value()) {
          reader_next_ = rec.seq + 1;
          if (rec.seq < read_pos_) continue;
          RecordInfo info;
          info.seq = rec.seq;
          info.dlsn = rec.dlsn;
          info.publish_ms = rec.txid;
          proto::BatchMetadata meta;
          std::string_view body;
          if (protocol::ParseBatchMetadata(rec.payload.view(), &meta, &body).ok()) {
            info.num_messages = meta.num_messages();
            info.key_hash = meta.has_batch_key() ? KeyHash(meta.batch_key()) : 0;
          }
          info.data = std::move(rec.payload);
          readahead_.push_back(std::move(info));
        }
        Pump();
      });
    };
  };
  if (reader_ && reader_next_ >= 0 && reader_next_ <= read_pos_) {
    read_in_flight_ = true;
    reader_->ReadNext(part_->ctx()->opts.dispatch_batch, on_records(reader_gen_));
    return;
  }
  reader_.reset();
  opening_reader_ = true;
  const uint64_t gen = ++reader_gen_;
  part_->SeqToDlsn(read_pos_, [this, alive, loop, gen, on_records](Result<log::Dlsn> d) {
    auto a = alive.lock();
    if (!a || !*a) return;
    if (gen != reader_gen_) {
      opening_reader_ = false;
      return;
    }
    if (!d.ok()) {
      opening_reader_ = false;
      CheckRetry();
      return;
    }
    part_->ns()->OpenReader(part_->log_name(), log::StartPosition::At(*d), {},
                            [this, alive, loop, gen, on_records](Result<std::unique_ptr<log::LogReader>> r) {
                              auto box = std::make_shared<Result<std::unique_ptr<log::LogReader>>>(std::move(r));
                              loop->Post([this, alive, gen, box, on_records] {
                                auto a2 = alive.lock();
                                if (!a2 || !*a2) return;
                                opening_reader_ = false;
                                if (gen != reader_gen_) return;
                                if (!box->ok()) {
                                  DLOG_WARN << "subscription '" << name_
                                            << "': open reader: " << box->status().ToString();
                                  CheckRetry();
                                  return;
                                }
                                reader_ = std::move(*box).value();
                                reader_next_ = 0;
                                read_in_flight_ = true;
                                reader_->ReadNext(part_->ctx()->opts.dispatch_batch, on_records(gen));
                              });
                            });
  });
}

void Subscription::SendTo(ConsumerH* c, const RecordInfo& r, int32_t redelivery_count,
                          const std::vector<uint64_t>& acked_bits, int32_t acked_count) {
  BrokerCtx* ctx = part_->ctx();
  proto::BaseCommand& out = ctx->Out();
  proto::Message* m = out.mutable_message();
  m->set_consumer_id(c->id);
  *m->mutable_message_id() = MakeMessageId(part_->index(), r.dlsn, r.seq, r.num_messages);
  m->set_redelivery_count(redelivery_count);
  for (uint64_t w : acked_bits) m->add_acked_batch_bits(w);
  ctx->Send(c->conn, out, r.data.view());
  const int32_t n = std::max(1, r.num_messages - acked_count);
  c->permits -= n;
  msg_out_ += n;
  part_->counters()->msg_out.fetch_add(n, std::memory_order_relaxed);
  part_->counters()->bytes_out.fetch_add(static_cast<int64_t>(r.data.size()), std::memory_order_relaxed);
  if (cursor_ == nullptr) {
    // A reader: nothing to ack, nothing to redeliver; it moves on.
    nd_mark_ = std::max(nd_mark_, r.seq + 1);
    return;
  }
  c->unacked += n;
  Pending& p = pending_[r.seq];
  p.consumer = c;
  p.rec = r;
  p.redelivery_count = redelivery_count;
  p.unacked = n;
  p.acked_bits = acked_bits;
  if (type_ == proto::SUB_KEY_SHARED) {
    auto& h = hash_outstanding_[r.key_hash];
    h.first = c;
    h.second += 1;
  }
}

void Subscription::DropPending(std::map<int64_t, Pending>::iterator it) {
  Pending& p = it->second;
  if (p.consumer != nullptr) p.consumer->unacked -= p.unacked;
  if (type_ == proto::SUB_KEY_SHARED) {
    auto h = hash_outstanding_.find(p.rec.key_hash);
    if (h != hash_outstanding_.end() && h->second.first == p.consumer && --h->second.second <= 0) {
      hash_outstanding_.erase(h);
    }
  }
  pending_.erase(it);
}

void Subscription::ToReplay(int64_t seq, Pending&& p, bool count_redelivery) {
  if (p.consumer != nullptr) p.consumer->unacked -= p.unacked;
  if (type_ == proto::SUB_KEY_SHARED) {
    auto h = hash_outstanding_.find(p.rec.key_hash);
    if (h != hash_outstanding_.end() && h->second.first == p.consumer && --h->second.second <= 0) {
      hash_outstanding_.erase(h);
    }
  }
  Replay& r = replay_[seq];
  r.rec = std::move(p.rec);
  r.redelivery_count = p.redelivery_count + (count_redelivery ? 1 : 0);
  if (count_redelivery) {
    ++redeliveries_;
    part_->counters()->redeliveries.fetch_add(1, std::memory_order_relaxed);
  }
}

void Subscription::OnFlow(ConsumerH* c, uint32_t permits) {
  c->permits = std::min(kMaxPermits, c->permits + static_cast<int64_t>(permits));
  c->window = std::max(c->window, c->permits);
  Pump();
}

void Subscription::OnAck(ConsumerH* c, const proto::Ack& ack,
                         std::function<void(proto::ServerError, std::string)> done) {
  (void)c;
  if (cursor_ == nullptr) return done(proto::SERVER_OK, {});  // a Reader: nothing to store
  if (!part_->Serving()) {
    return done(proto::SERVER_LEASE_EXPIRED, "partition " + part_->name() + " is not served here now");
  }
  const bool cumulative = ack.ack_type() == proto::ACK_CUMULATIVE;
  if (cumulative && (type_ == proto::SUB_SHARED || type_ == proto::SUB_KEY_SHARED)) {
    return done(proto::SERVER_NOT_ALLOWED,
                "cumulative ack is not allowed on a " + proto::SubscriptionType_Name(type_) + " subscription");
  }
  if (ack.message_ids_size() == 0 || (cumulative && ack.message_ids_size() != 1)) {
    return done(proto::SERVER_BAD_REQUEST,
                cumulative ? "a cumulative ack names exactly one message" : "an ack names no message");
  }
  const int64_t end = part_->durable_end();
  ack_items_.clear();
  int unknown_size_index_acks = 0;
  for (const auto& id : ack.message_ids()) {
    const int64_t seq = id.record_seq();
    if (seq < 0 || seq >= end) {
      return done(proto::SERVER_BAD_REQUEST, "ack of message " + std::to_string(seq) +
                                                 " which does not exist (the partition has " + std::to_string(end) +
                                                 " records)");
    }
    // The batch size is the broker's when it knows the record; a client's
    // claim is taken only for records it cannot see now (delivered by a
    // previous owner), and only so many per Ack (a bitmap each).
    int32_t size = id.batch_size();
    if (auto pit = pending_.find(seq); pit != pending_.end()) {
      size = pit->second.rec.num_messages;
    } else if (auto rit = replay_.find(seq); rit != replay_.end()) {
      size = rit->second.rec.num_messages;
    } else if (const RecordInfo* cached = part_->cache().Find(seq)) {
      size = cached->num_messages;
    } else if (id.batch_index() >= 0 && ++unknown_size_index_acks > kMaxUnknownSizeIndexAcks) {
      return done(proto::SERVER_BAD_REQUEST, "more than " + std::to_string(kMaxUnknownSizeIndexAcks) +
                                                 " batch-index acks of records the broker does not hold in one Ack");
    }
    if (size < 1 || size > protocol::kMaxBatchMessages || id.batch_index() < -1 || id.batch_index() >= size) {
      return done(proto::SERVER_BAD_REQUEST, "ack of message " + std::to_string(seq) + " with batch index " +
                                                 std::to_string(id.batch_index()) + " of " + std::to_string(size));
    }
    ack_items_.push_back(SubscriptionCursor::AckItem{seq, id.batch_index(), size});
  }
  // Records taken out of pending_/replay_ for this ack go back for
  // redelivery if the cursor refuses it (busy, fenced): an unpersisted ack
  // must not make a record undeliverable.
  auto restore = std::make_shared<std::vector<std::pair<int64_t, Replay>>>();
  auto take_pending = [&](std::map<int64_t, Pending>::iterator it) {
    restore->emplace_back(it->first, Replay{it->second.rec, it->second.redelivery_count});
    DropPending(it);
  };
  auto take_replay = [&](std::map<int64_t, Replay>::iterator it) {
    restore->emplace_back(it->first, std::move(it->second));
    return replay_.erase(it);
  };
  // Cursor-log records are acknowledged in order: once this ack is, every
  // ack submitted before it is too, so the mark-delete position as of now is
  // persisted. (Taken after the call below, which applies the acks.)
  auto md_after = std::make_shared<int64_t>(0);
  std::weak_ptr<bool> alive = alive_;
  const uint64_t gen = gen_;  // a seek since makes this ack's position moot
  auto cb = [this, alive, md_after, done, gen, restore](Status st) {
    if (auto a = alive.lock(); a && *a) {
      if (st.ok() && gen == gen_) persisted_md_ = std::max(persisted_md_, *md_after);
      if (!st.ok() && gen == gen_ && !closed_) {
        for (auto& [seq, r] : *restore) {
          if (pending_.count(seq) == 0 && replay_.count(seq) == 0) replay_.emplace(seq, std::move(r));
        }
        Pump();
      }
    }
    done(ToServerError(st), st.ok() ? std::string() : st.ToString());
  };
  if (cumulative) {
    const auto& item = ack_items_.front();
    for (auto it = pending_.begin(); it != pending_.end() && it->first <= item.seq;) {
      if (it->first < item.seq || item.batch_index < 0 || item.batch_index == item.batch_size - 1) {
        auto next = std::next(it);
        take_pending(it);
        it = next;
      } else {
        ++it;
      }
    }
    for (auto it = replay_.begin(); it != replay_.end() && it->first < item.seq;) it = take_replay(it);
    cursor_->AckCumulative(item, cb);
    *md_after = cursor_->mark_delete();
  } else {
    for (const auto& item : ack_items_) {
      auto it = pending_.find(item.seq);
      if (it == pending_.end()) {
        if (item.batch_index < 0) {
          if (auto r = replay_.find(item.seq); r != replay_.end()) take_replay(r);
        }
        continue;
      }
      Pending& p = it->second;
      if (item.batch_index < 0) {
        take_pending(it);
      } else if (!BitSet(p.acked_bits, item.batch_index)) {
        SetBit(&p.acked_bits, item.batch_index);
        --p.unacked;
        if (p.consumer != nullptr) --p.consumer->unacked;
        if (p.unacked <= 0) {
          p.unacked = 0;
          take_pending(it);
        }
      }
    }
    cursor_->Ack(ack_items_, cb);
    *md_after = cursor_->mark_delete();
  }
  Pump();
}

void Subscription::OnRedeliver(ConsumerH* c, const proto::RedeliverUnacknowledged& r) {
  if (r.message_ids_size() == 0) {
    RedeliverAllOf(c);
  } else {
    for (const auto& id : r.message_ids()) {
      auto it = pending_.find(id.record_seq());
      if (it == pending_.end() || it->second.consumer != c) continue;
      const int64_t seq = it->first;
      Pending p = std::move(it->second);
      pending_.erase(it);
      ToReplay(seq, std::move(p), true);
    }
  }
  Pump();
}

void Subscription::DisconnectConsumers() {
  auto consumers = std::move(consumers_);
  consumers_.clear();
  BrokerCtx* ctx = part_->ctx();
  for (auto& c : consumers) {
    if (c->closed) continue;
    proto::BaseCommand& out = ctx->Out();
    out.mutable_close_consumer()->set_consumer_id(c->id);
    ctx->Send(c->conn, out);
    c->closed = true;
    c->sub = nullptr;
    ctx->probe->consumers.fetch_sub(1, std::memory_order_relaxed);
    ctx->DetachConsumer(*c);
  }
  pending_.clear();
  hash_outstanding_.clear();
  ring_.clear();
}

void Subscription::Seek(int64_t seq, std::function<void(Status)> done) {
  ++gen_;
  ++reader_gen_;
  reader_.reset();
  read_in_flight_ = false;
  opening_reader_ = false;
  readahead_.clear();
  replay_.clear();
  read_pos_ = seq;
  // Consumers reconnect and start at the new position with fresh permits.
  DisconnectConsumers();
  if (cursor_ == nullptr) {
    nd_mark_ = seq;
    return done(Status::OK());
  }
  ++seeking_;
  std::weak_ptr<bool> alive = alive_;
  // Until the reset is persisted, truncation keeps to the lower of the two.
  persisted_md_ = std::min(persisted_md_, seq);
  cursor_->Reset(seq, [this, alive, done, seq](Status st) {
    if (auto a = alive.lock(); a && *a) {
      --seeking_;
      if (st.ok() && seeking_ == 0) persisted_md_ = seq;
      Pump();
    }
    done(st);
  });
}

void Subscription::CloseAll() {
  if (closed_) return;
  DisconnectConsumers();
  closed_ = true;
  retry_timer_.Stop();
  reader_.reset();
  replay_.clear();
  readahead_.clear();
}

proto::SubscriptionStats Subscription::Stats() const {
  proto::SubscriptionStats s;
  s.set_name(name_);
  s.set_type(type_);
  const int64_t md = mark_delete();
  s.set_mark_delete_seq(md);
  const int64_t beyond = cursor_ != nullptr ? cursor_->acked_records_beyond() : 0;
  s.set_backlog_messages(std::max<int64_t>(0, part_->durable_end() - md - beyond));
  s.set_ack_holes(cursor_ != nullptr ? cursor_->ack_holes() : 0);
  s.set_consumers(static_cast<int32_t>(consumers_.size()));
  s.set_msg_out(msg_out_);
  s.set_redeliveries(redeliveries_);
  int64_t oldest = -1;
  if (md < part_->durable_end()) {
    if (auto it = pending_.find(md); it != pending_.end()) {
      oldest = it->second.rec.publish_ms;
    } else if (auto r = replay_.find(md); r != replay_.end()) {
      oldest = r->second.rec.publish_ms;
    } else if (const RecordInfo* c = part_->cache_.Find(md)) {
      oldest = c->publish_ms;
    } else if (!pending_.empty()) {
      oldest = pending_.begin()->second.rec.publish_ms;
    }
  }
  s.set_backlog_age_ms(oldest > 0 ? std::max<int64_t>(0, WallMillis() - oldest) : 0);
  return s;
}

}  // namespace dlog::broker
