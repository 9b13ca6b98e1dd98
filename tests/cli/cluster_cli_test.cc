// `dlog --metadata zk://...`: the CLI's direct backend (through the log
// library) against a real ZooKeeper and a `dlogd logstore` node. Also the
// one place a second writer exists, so "locked by another writer" is seen.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "logstore/log/log_client.h"
#include "logstore/log/namespace.h"
#include "tests/cli/cli_test_util.h"
#include "tests/metadata/zk_fixture.h"
#include "tests/support/test_util.h"

namespace dlog::test {
namespace {

class ClusterCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ZkServer::Available()) GTEST_SKIP() << "ZooKeeper is not installed";
    ASSERT_TRUE(zk_.Start()) << zk_.Log();
    url_ = "zk://" + zk_.connect() + "/dlog";
    node_ = std::make_unique<LogstoreNode>(node_dir_.path(), FreePort(), std::vector<std::string>{"--metadata", url_});
    ASSERT_TRUE(node_->Start(true)) << node_->Stderr();
    log::LogClientOptions o;
    o.metadata_url = url_;
    auto c = log::LogClient::Open(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c).value();
    // Namespaces are an operator's decision in a cluster; the test makes one.
    auto ns = log::Namespace::CreateSync(client_->segments(), "default", log::NamespaceSettings{});
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    ns_ = std::move(ns).value();
  }

  void TearDown() override {
    ns_.reset();
    client_.reset();
    if (node_) EXPECT_EQ(node_->Stop(), 0);
  }

  CliResult Cli(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv = {"--metadata", url_};
    for (auto& a : args) argv.push_back(a);
    return RunCli(dir_, ++runs_, argv, input);
  }

  std::string Write(const std::string& log_name, const std::vector<std::string>& lines) {
    std::string input;
    for (auto& l : lines) input += l + "\n";
    CliResult r = Cli({"log", "write", log_name}, input);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("wrote " + std::to_string(lines.size()) + " records"), std::string::npos) << r.out;
    const size_t at = r.out.find("last DLSN ");
    return at == std::string::npos ? "" : Lines(r.out.substr(at + 10)).at(0);
  }

  std::vector<TailLine> Tail(const std::string& log_name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"log", "tail", log_name};
    for (auto& a : extra) args.push_back(a);
    CliResult r = Cli(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseTail(r.out);
  }

  ZkServer zk_{200};
  TempDir dir_;
  TempDir node_dir_;
  std::string url_;
  std::unique_ptr<LogstoreNode> node_;
  std::unique_ptr<log::LogClient> client_;
  std::unique_ptr<log::Namespace> ns_;
  int runs_ = 0;
};

TEST_F(ClusterCliTest, WriteTailStatTruncateDeleteAndLockedByAnotherWriter) {
  ASSERT_EQ(Cli({"log", "create", "c"}).code, 0);
  ExpectUserError(Cli({"log", "create", "c"}), "already exists");
  const std::string first_last = Write("c", Numbers(1, 3));
  ExpectInOrder(Tail("c"), Numbers(1, 3));
  CliResult stat = Cli({"log", "stat", "c"});
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_EQ(StatField(stat.out, "records"), "3") << stat.out;
  EXPECT_EQ(StatField(stat.out, "last dlsn"), first_last) << stat.out;
  EXPECT_EQ(StatField(stat.out, "writer"), "none") << stat.out;
  EXPECT_EQ(Lines(Cli({"log", "list"}).out), std::vector<std::string>{"c"});

  {
    // Another writer holds the log: the CLI says who.
    log::WriterOptions wo;
    wo.owner_id = "holder-in-test";
    auto w = ns_->OpenWriterSync("c", wo);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    CliResult r = Cli({"log", "write", "c"}, "x\n");
    ExpectUserError(r, "locked");
    EXPECT_NE(r.err.find("holder-in-test"), std::string::npos) << r.err;
    EXPECT_NE(Cli({"log", "stat", "c"}).out.find("holder-in-test"), std::string::npos);
    ASSERT_TRUE((*w)->CloseSync().ok());
  }

  // Each CLI write is a new writer, so a new segment: truncate the first.
  Write("c", Numbers(4, 6));
  auto all = Tail("c");
  ExpectInOrder(all, Numbers(1, 6));
  ASSERT_EQ(Cli({"log", "truncate", "c", all[3].dlsn_text}).code, 0);
  ExpectInOrder(Tail("c"), Numbers(4, 6));

  ASSERT_EQ(Cli({"log", "delete", "c"}).code, 0);
  ExpectUserError(Cli({"log", "stat", "c"}), "log 'c' not found");
  EXPECT_EQ(Cli({"log", "list"}).out, "");
  ExpectUserError(Cli({"--namespace", "nope", "log", "list"}), "namespace 'nope' not found");
}

}  // namespace
}  // namespace dlog::test
