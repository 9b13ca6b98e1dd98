// Scale (label `scale`, opt-in): 1,000 topics × 4 partitions created,
// produced to and consumed from through 2 brokers (ZooKeeper, 4 logstore
// nodes), within a time budget.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>

#include "tests/broker/broker_fixture.h"

namespace dlog::test {
namespace {

using namespace std::chrono_literals;

class BrokerScaleTest : public BrokerCluster {
 protected:
  void SetUp() override { StartCluster(2); }
};

TEST_F(BrokerScaleTest, ThousandTopicsOfFourPartitions) {
  const int topics = 1000, partitions = 4, window = 64;
  auto c = NewClient(300000);
  auto name = [](int i) { return "scale/t/topic-" + std::to_string(i); };
  const auto t0 = std::chrono::steady_clock::now();
  // Create, a window at a time.
  std::atomic<int> done{0}, failed{0};
  for (int i = 0; i < topics; ++i) {
    while (i - done.load() >= window) std::this_thread::sleep_for(1ms);
    c->CreateTopicAsync(name(i), partitions, [&](Status st) {
      if (!st.ok()) failed++;
      done++;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return done.load() == topics; }, Scaled(600s)));
  ASSERT_EQ(failed.load(), 0);
  auto listed = c->ListTopics("scale/t");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), static_cast<size_t>(topics));
  const auto t1 = std::chrono::steady_clock::now();

  // Per topic: a consumer (earliest), one message per partition, all received.
  std::mutex mu;
  std::set<std::string> received;
  std::atomic<int> sent{0}, send_failed{0};
  for (int base = 0; base < topics; base += window) {
    std::vector<client::Consumer> consumers;
    for (int i = base; i < std::min(topics, base + window); ++i) {
      client::ConsumerConfig cc;
      cc.initial_position = client::InitialPosition::kEarliest;
      cc.receiver_queue_size = 10;
      auto cons = c->Subscribe(name(i), "scale", cc);
      ASSERT_TRUE(cons.ok()) << name(i) << ": " << cons.status().ToString();
      consumers.push_back(*cons);
      client::ProducerConfig pc;
      pc.batching_enabled = false;
      auto p = c->CreateProducer(name(i), pc);
      ASSERT_TRUE(p.ok()) << name(i) << ": " << p.status().ToString();
      for (int k = 0; k < partitions; ++k) {
        auto id = p->Send(client::Message::Create(name(i) + "#" + std::to_string(k)));
        if (id.ok()) {
          sent++;
        } else {
          send_failed++;
        }
      }
      ASSERT_TRUE(p->Close().ok());
    }
    for (auto& cons : consumers) {
      for (int k = 0; k < partitions; ++k) {
        auto m = cons.Receive(Scaled(30s).count());
        ASSERT_TRUE(m.ok()) << cons.topic() << ": " << m.status().ToString();
        ASSERT_TRUE(cons.Acknowledge(*m).ok());
        std::lock_guard<std::mutex> l(mu);
        received.insert(std::string(m->payload()));
      }
      ASSERT_TRUE(cons.Close().ok());
    }
  }
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(send_failed.load(), 0);
  EXPECT_EQ(received.size(), static_cast<size_t>(topics * partitions));
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::printf("scale: %d topics x %d partitions: created in %lld ms, produced and consumed in %lld ms\n", topics,
              partitions, static_cast<long long>(ms(t1 - t0)), static_cast<long long>(ms(t2 - t1)));
  // Budget: well inside the test's timeout on this 2-core machine.
  EXPECT_LT(t2 - t0, Scaled(900s));
}

}  // namespace
}  // namespace dlog::test
