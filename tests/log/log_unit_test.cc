// Unit tests of log streams' pure parts: DLSN text form and order, the entry
// codec (round trip, byte layout, truncated and garbage input -> kCorrupt,
// never a crash), name validation and namespace settings.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "logstore/log/dlsn.h"
#include "logstore/log/entry.h"
#include "logstore/log/errors.h"
#include "logstore/log/namespace.h"

namespace dlog::log {
namespace {

// ---------------------------------------------------------------- DLSN

TEST(DlsnTest, FormatAndParseRoundTrip) {
  EXPECT_EQ((Dlsn{3, 1742, 0}).ToString(), "3/1742/0");
  EXPECT_EQ(Dlsn::Initial().ToString(), "0/0/0");
  const Dlsn cases[] = {
      {0, 0, 0},
      {1, 0, 7},
      {12, 345678, 9},
      {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max(), std::numeric_limits<int32_t>::max()}};
  for (const Dlsn& d : cases) {
    auto p = Dlsn::Parse(d.ToString());
    ASSERT_TRUE(p.ok()) << d.ToString() << ": " << p.status().ToString();
    EXPECT_EQ(*p, d) << d.ToString();
  }
}

TEST(DlsnTest, ParseRejectsMalformedText) {
  const char* bad[] = {"",
                       "1",
                       "1/2",
                       "1/2/3/4",
                       "a/b/c",
                       "-1/0/0",
                       "0/-1/0",
                       "0/0/-1",
                       "1//0",
                       "/1/2",
                       "1/2/",
                       " 1/2/3",
                       "1/2/3 ",
                       "1 /2/3",
                       "+1/2/3",
                       "0x1/2/3",
                       "1/2/2147483648",
                       "1.5/2/3",
                       "1/2/3\n",
                       "1\0/2/3",
                       "99999999999999999999/0/0",
                       "1/99999999999999999999/0"};
  for (const char* b : bad) {
    auto p = Dlsn::Parse(b);
    EXPECT_FALSE(p.ok()) << "'" << b << "' parsed as " << (p.ok() ? p->ToString() : "");
    EXPECT_TRUE(p.status().Is(LogErrc::kInvalidArgument)) << "'" << b << "': " << p.status().ToString();
  }
  // An embedded NUL is not the end of the text.
  auto nul = Dlsn::Parse(std::string_view("1/2/3\0", 6));
  EXPECT_TRUE(nul.status().Is(LogErrc::kInvalidArgument)) << nul.status().ToString();
}

TEST(DlsnTest, OrderIsSegmentThenEntryThenSlot) {
  const Dlsn ordered[] = {Dlsn::Initial(), {0, 0, 1}, {0, 1, 0}, {1, 0, 0},       {1, 0, 1}, {1, 0, 2},
                          {1, 1, 0},       {1, 9, 9}, {2, 0, 0}, {2, 1000000, 0}, {10, 0, 0}};
  for (size_t i = 0; i < std::size(ordered); ++i) {
    for (size_t j = 0; j < std::size(ordered); ++j) {
      EXPECT_EQ(ordered[i] < ordered[j], i < j) << ordered[i].ToString() << " vs " << ordered[j].ToString();
      EXPECT_EQ(ordered[i] == ordered[j], i == j) << ordered[i].ToString() << " vs " << ordered[j].ToString();
    }
  }
  EXPECT_EQ(Dlsn::Initial(), (Dlsn{0, 0, 0}));
}

// ---------------------------------------------------------------- entry codec

struct Rec {
  int64_t txid;
  std::string payload;
};

Slice Build(int64_t first_seq, const std::vector<Rec>& recs, uint8_t flags = 0) {
  EntryBuilder b;
  b.Reset(first_seq);
  for (const Rec& r : recs) b.Add(r.txid, r.payload.data(), r.payload.size());
  return b.Take(flags);
}

template <typename T>
T Le(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
  return v;
}

std::string Bytes(const Slice& s) { return std::string(s.view()); }
Slice FromBytes(const std::string& b) { return Slice::CopyOf(b); }

bool IsCorrupt(const Status& st) { return st.Is(LogErrc::kCorrupt); }

TEST(EntryCodecTest, RoundTrip) {
  std::vector<Rec> recs = {{5, "hello"}, {5, ""}, {9, std::string(3000, 'x')}, {12, std::string("\0\1\2", 3)}};
  EntryBuilder b;
  b.Reset(100);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.first_record_seq(), 100);
  size_t expect_size = kEntryHeaderSize;
  for (const Rec& r : recs) {
    b.Add(r.txid, r.payload.data(), r.payload.size());
    expect_size += kRecordHeaderSize + r.payload.size();
    EXPECT_EQ(b.size(), expect_size);
  }
  EXPECT_EQ(b.count(), 4u);
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(b.max_txid(), 12);
  Slice e = b.Take();
  EXPECT_EQ(e.size(), expect_size);
  EXPECT_TRUE(b.empty());

  std::vector<EntryRecord> out;
  auto h = DecodeEntry(e, &out);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->record_count, 4u);
  EXPECT_EQ(h->first_record_seq, 100);
  EXPECT_EQ(h->max_txid, 12);
  EXPECT_FALSE(h->end_of_stream());
  ASSERT_EQ(out.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(out[i].txid, recs[i].txid) << i;
    EXPECT_EQ(out[i].payload.view(), recs[i].payload) << i;
  }
  auto hh = DecodeEntryHeader(e);
  ASSERT_TRUE(hh.ok()) << hh.status().ToString();
  EXPECT_EQ(hh->record_count, 4u);
  EXPECT_EQ(hh->first_record_seq, 100);
  EXPECT_EQ(hh->max_txid, 12);
}

// The documented little-endian layout, byte by byte.
TEST(EntryCodecTest, ByteLayout) {
  Slice e = Build(0x0102030405060708LL, {{0x1122334455667788LL, "ab"}, {0x1122334455667789LL, "c"}});
  ASSERT_EQ(e.size(), kEntryHeaderSize + 2 * kRecordHeaderSize + 3);
  const uint8_t* p = e.data();
  EXPECT_EQ(p[0], kEntryVersion);
  EXPECT_EQ(p[1], 0);
  EXPECT_EQ(p[2], 0);
  EXPECT_EQ(p[3], 0);
  EXPECT_EQ(Le<uint32_t>(p + 4), 2u);
  EXPECT_EQ(Le<int64_t>(p + 8), 0x0102030405060708LL);
  EXPECT_EQ(Le<int64_t>(p + 16), 0x1122334455667789LL);
  const uint8_t* r = p + kEntryHeaderSize;
  EXPECT_EQ(Le<uint32_t>(r), 2u);
  EXPECT_EQ(Le<int64_t>(r + 4), 0x1122334455667788LL);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r + 12), 2), "ab");
  r += kRecordHeaderSize + 2;
  EXPECT_EQ(Le<uint32_t>(r), 1u);
  EXPECT_EQ(Le<int64_t>(r + 4), 0x1122334455667789LL);
  EXPECT_EQ(r[12], 'c');
}

TEST(EntryCodecTest, EndOfStreamEntry) {
  Slice e = MakeEndOfStreamEntry(42, 77);
  EXPECT_EQ(e.size(), kEntryHeaderSize);
  std::vector<EntryRecord> out{EntryRecord{1, Slice::CopyOf("stale")}};
  auto h = DecodeEntry(e, &out);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->end_of_stream());
  EXPECT_EQ(h->flags & kEntryFlagEndOfStream, kEntryFlagEndOfStream);
  EXPECT_EQ(h->record_count, 0u);
  EXPECT_EQ(h->first_record_seq, 42);
  EXPECT_EQ(h->max_txid, 77);
  EXPECT_TRUE(out.empty()) << "DecodeEntry must replace the output records";
}

TEST(EntryCodecTest, BuilderIsReusableAndTakenEntriesStayValid) {
  EntryBuilder b;
  b.Reset(0);
  b.Add(1, "first", 5);
  Slice e1 = b.Take();
  b.Reset(1);
  b.Add(2, "second-entry-overwrites-the-buffer", 34);
  b.Add(3, "more", 4);
  Slice e2 = b.Take();
  std::vector<EntryRecord> out;
  auto h1 = DecodeEntry(e1, &out);
  ASSERT_TRUE(h1.ok()) << h1.status().ToString();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload.view(), "first");
  EXPECT_EQ(h1->first_record_seq, 0);
  auto h2 = DecodeEntry(e2, &out);
  ASSERT_TRUE(h2.ok()) << h2.status().ToString();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(h2->first_record_seq, 1);
  EXPECT_EQ(h2->max_txid, 3);
  EXPECT_EQ(out[1].payload.view(), "more");
}

// Decoded payloads share the entry's chunk: they outlive the entry Slice.
TEST(EntryCodecTest, DecodedPayloadsOwnTheirBytes) {
  std::vector<EntryRecord> out;
  {
    Slice e = Build(7, {{1, "alpha"}, {2, "beta"}});
    ASSERT_TRUE(DecodeEntry(e, &out).ok());
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].payload.view(), "alpha");
  EXPECT_EQ(out[1].payload.view(), "beta");
}

TEST(EntryCodecTest, EmptyEntryAndShortBuffersAreCorrupt) {
  std::vector<EntryRecord> out;
  EXPECT_TRUE(IsCorrupt(DecodeEntry(Slice(), &out).status()));
  EXPECT_TRUE(IsCorrupt(DecodeEntryHeader(Slice()).status()));
  for (size_t n = 1; n < kEntryHeaderSize; ++n) {
    std::string b(n, '\0');
    b[0] = static_cast<char>(kEntryVersion);
    EXPECT_TRUE(IsCorrupt(DecodeEntry(FromBytes(b), &out).status())) << n;
    EXPECT_TRUE(IsCorrupt(DecodeEntryHeader(FromBytes(b)).status())) << n;
  }
}

// Every proper prefix of a valid multi-record entry is corrupt (the header's
// count or a record's size runs past the end), and nothing reads past it.
TEST(EntryCodecTest, EveryTruncationIsCorrupt) {
  Slice e = Build(3, {{1, "one"}, {2, ""}, {3, std::string(100, 'z')}, {4, "four"}});
  const std::string full = Bytes(e);
  std::vector<EntryRecord> out;
  for (size_t n = 0; n < full.size(); ++n) {
    // Copy into an exact-size heap buffer so ASan catches an over-read.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[n == 0 ? 1 : n]);
    std::memcpy(buf.get(), full.data(), n);
    auto h = DecodeEntry(Slice::Unowned(buf.get(), n), &out);
    EXPECT_FALSE(h.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_TRUE(IsCorrupt(h.status())) << n << ": " << h.status().ToString();
  }
  EXPECT_TRUE(DecodeEntry(e, &out).ok());
}

TEST(EntryCodecTest, MalformedHeadersAndRecordsAreCorrupt) {
  const std::string good = Bytes(Build(10, {{1, "abc"}, {2, "defg"}}));
  std::vector<EntryRecord> out;
  auto corrupt = [&](const std::string& b, const char* what) {
    auto h = DecodeEntry(FromBytes(b), &out);
    EXPECT_TRUE(IsCorrupt(h.status())) << what << ": " << (h.ok() ? "decoded" : h.status().ToString());
  };
  {
    std::string b = good;
    b[0] = 2;  // unknown version
    corrupt(b, "version 2");
    b[0] = 0;
    corrupt(b, "version 0");
    b[0] = static_cast<char>(0xff);
    corrupt(b, "version 255");
  }
  {
    std::string b = good;
    b[4] = 3;  // claims 3 records, holds 2
    corrupt(b, "count too high");
  }
  {
    std::string b = good;
    b[4] = static_cast<char>(0xff);
    b[5] = static_cast<char>(0xff);
    b[6] = static_cast<char>(0xff);
    b[7] = static_cast<char>(0xff);  // 4 billion records
    corrupt(b, "count 2^32-1");
  }
  {
    std::string b = good;
    b[4] = 1;  // claims 1 record: the second is trailing garbage
    corrupt(b, "count too low (trailing bytes)");
  }
  {
    std::string b = good + "x";  // a trailing byte after the last record
    corrupt(b, "trailing byte");
  }
  {
    std::string b = good;
    const size_t r0 = kEntryHeaderSize;
    b[r0] = static_cast<char>(0xff);
    b[r0 + 1] = static_cast<char>(0xff);
    b[r0 + 2] = static_cast<char>(0xff);
    b[r0 + 3] = static_cast<char>(0xff);  // payload size 2^32-1
    corrupt(b, "record size 2^32-1");
    b[r0 + 3] = static_cast<char>(0x7f);
    corrupt(b, "record size 2^31-1");
  }
  {
    std::string b = good;
    const size_t r1 = kEntryHeaderSize + kRecordHeaderSize + 3;
    b[r1] = 5;  // second record claims 5 bytes, has 4
    corrupt(b, "last record one byte short");
  }
  {
    std::string b = good;
    b[kEntryHeaderSize] = 2;  // first record claims 2 bytes: the rest misparses
    corrupt(b, "record size off by one");
  }
  {
    // A header-only entry that claims records.
    std::string b = good.substr(0, kEntryHeaderSize);
    corrupt(b, "header only, count 2");
  }
}

// Random garbage and random mutations of valid entries: DecodeEntry either
// succeeds consistently or says kCorrupt; it never crashes or over-reads.
TEST(EntryCodecTest, GarbageNeverCrashes) {
  std::mt19937_64 rng(12345);
  std::vector<EntryRecord> out;
  int decoded = 0, corrupt = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string b;
    if (iter % 2 == 0) {
      const size_t n = rng() % 200;
      b.resize(n);
      for (auto& c : b) c = static_cast<char>(rng());
      if (n > 0 && rng() % 2 == 0) b[0] = static_cast<char>(kEntryVersion);
      if (n > 7 && rng() % 2 == 0) std::memset(b.data() + 2, 0, 6);  // plausible small counts
    } else {
      std::vector<Rec> recs;
      const int k = static_cast<int>(rng() % 5);
      for (int i = 0; i < k; ++i) recs.push_back({static_cast<int64_t>(i), std::string(rng() % 20, 'p')});
      b = Bytes(Build(static_cast<int64_t>(rng() % 1000), recs));
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips && !b.empty(); ++f) b[rng() % b.size()] = static_cast<char>(rng());
      if (rng() % 4 == 0 && !b.empty()) b.resize(rng() % b.size());
    }
    std::unique_ptr<uint8_t[]> buf(new uint8_t[b.empty() ? 1 : b.size()]);
    std::memcpy(buf.get(), b.data(), b.size());
    Slice s = Slice::Unowned(buf.get(), b.size());
    auto h = DecodeEntry(s, &out);
    if (h.ok()) {
      ++decoded;
      ASSERT_EQ(out.size(), h->record_count);
      size_t total = kEntryHeaderSize;
      for (const auto& r : out) {
        ASSERT_GE(r.payload.data(), s.data());
        ASSERT_LE(r.payload.data() + r.payload.size(), s.data() + s.size());
        total += kRecordHeaderSize + r.payload.size();
      }
      EXPECT_EQ(total, s.size());
    } else {
      ++corrupt;
      ASSERT_TRUE(IsCorrupt(h.status())) << h.status().ToString();
    }
    auto hh = DecodeEntryHeader(s);
    if (!hh.ok()) {
      ASSERT_TRUE(IsCorrupt(hh.status())) << hh.status().ToString();
    }
  }
  EXPECT_GT(corrupt, 0);
  std::fprintf(stderr, "garbage: %d decoded, %d corrupt\n", decoded, corrupt);
}

// ---------------------------------------------------------------- names and settings

TEST(LogNameTest, Validation) {
  const std::string ok[] = {"a",   "events", "tenant/ns/topic", "A-Z_a.z-0", std::string(255, 'n'),
                            "x.y", "lock2",  "~!@#$%^&*()"};
  for (const auto& n : ok) EXPECT_TRUE(ValidateLogName(n).ok()) << n << ": " << ValidateLogName(n).ToString();
  const std::string bad[] = {"",
                             std::string(256, 'n'),
                             ".hidden",
                             ".",
                             "..",
                             "lock",
                             "a\nb",
                             "tab\there",
                             "\x7f",
                             "caf\xc3\xa9",
                             std::string("a\0b", 3)};
  for (const auto& n : bad) {
    Status st = ValidateLogName(n);
    EXPECT_TRUE(st.Is(LogErrc::kInvalidArgument)) << "'" << n << "': " << st.ToString();
  }
}

TEST(NamespaceSettingsTest, ProtoRoundTripAndValidation) {
  NamespaceSettings s;
  s.ensemble_size = 5;
  s.write_quorum = 3;
  s.ack_quorum = 2;
  s.roll_bytes = 1 << 20;
  s.roll_ms = 60'000;
  s.roll_entries = 1000;
  s.retention_ms = 3'600'000;
  s.retention_bytes = 1ll << 30;
  s.truncation_grace_ms = 5000;
  EXPECT_TRUE(s.Validate().ok()) << s.Validate().ToString();
  NamespaceSettings r = NamespaceSettings::FromProto(s.ToProto());
  EXPECT_EQ(r.ensemble_size, 5);
  EXPECT_EQ(r.write_quorum, 3);
  EXPECT_EQ(r.ack_quorum, 2);
  EXPECT_EQ(r.roll_bytes, 1 << 20);
  EXPECT_EQ(r.roll_ms, 60'000);
  EXPECT_EQ(r.roll_entries, 1000);
  EXPECT_EQ(r.retention_ms, 3'600'000);
  EXPECT_EQ(r.retention_bytes, 1ll << 30);
  EXPECT_EQ(r.truncation_grace_ms, 5000);
  EXPECT_TRUE(NamespaceSettings{}.Validate().ok());

  auto invalid = [](auto mutate, const char* what) {
    NamespaceSettings b;
    b.ensemble_size = 3;
    b.write_quorum = 3;
    b.ack_quorum = 2;
    mutate(b);
    Status st = b.Validate();
    EXPECT_TRUE(st.Is(LogErrc::kInvalidArgument)) << what << ": " << st.ToString();
  };
  invalid([](NamespaceSettings& b) { b.write_quorum = 4; }, "Qw > E");
  invalid([](NamespaceSettings& b) { b.ack_quorum = 4; }, "Qa > Qw");
  invalid([](NamespaceSettings& b) { b.ack_quorum = 0; }, "Qa = 0");
  invalid([](NamespaceSettings& b) { b.ensemble_size = 0; }, "E = 0");
  invalid([](NamespaceSettings& b) { b.roll_bytes = -1; }, "roll_bytes < 0");
  invalid([](NamespaceSettings& b) { b.roll_entries = -1; }, "roll_entries < 0");
  invalid([](NamespaceSettings& b) { b.retention_ms = -1; }, "retention_ms < 0");
  invalid([](NamespaceSettings& b) { b.truncation_grace_ms = -1; }, "grace < 0");
}

TEST(LogErrcTest, NamesAndDomain) {
  Status st = Status::Error(LogErrc::kLocked, "log x is held by w1");
  EXPECT_EQ(st.domain(), ErrorDomain::kLog);
  EXPECT_TRUE(st.Is(LogErrc::kLocked));
  EXPECT_FALSE(st.Is(LogErrc::kFenced));
  EXPECT_NE(st.ToString().find("LOCKED"), std::string::npos) << st.ToString();
  for (int c = 1; c <= 16; ++c) {
    EXPECT_STRNE(ErrcTraits<LogErrc>::Name(c), "UNKNOWN") << c;
  }
}

}  // namespace
}  // namespace dlog::log
