// Helpers for tests that run the `dlog` CLI as a child process and read its
// output.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_util.h"

namespace dlog::test {

inline std::string CliPath() {
  const char* env = std::getenv("DLOG_CLI");
  return env != nullptr ? env : DLOG_CLI_PATH;
}

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

struct Dlsn {
  long long seq = -1, entry = -1, slot = -1;
  auto operator<=>(const Dlsn&) const = default;
};

inline Dlsn ParseDlsn(const std::string& s) {
  Dlsn d;
  if (std::sscanf(s.c_str(), "%lld/%lld/%lld", &d.seq, &d.entry, &d.slot) != 3) return Dlsn{};
  return d;
}

struct TailLine {
  Dlsn dlsn;
  std::string dlsn_text;
  std::string payload;
};

inline std::vector<TailLine> ParseTail(const std::string& out) {
  std::vector<TailLine> recs;
  for (const std::string& l : Lines(out)) {
    const size_t tab = l.find('\t');
    if (tab == std::string::npos) {
      ADD_FAILURE() << "tail line without a tab: '" << l << "'";
      continue;
    }
    recs.push_back(TailLine{ParseDlsn(l.substr(0, tab)), l.substr(0, tab), l.substr(tab + 1)});
  }
  return recs;
}

// The value of "key: value" in `dlog log stat` output.
inline std::string StatField(const std::string& out, const std::string& key) {
  for (const std::string& l : Lines(out)) {
    if (l.rfind(key + ": ", 0) == 0) return l.substr(key.size() + 2);
  }
  return "<no " + key + ">";
}

struct CliResult {
  int code = -1;  // exit code; -1 if it did not exit normally
  std::string out;
  std::string err;
};

// Runs the CLI with `args` and `input` on stdin; run `n` names its files in `dir`.
inline CliResult RunCli(const TempDir& dir, int n, const std::vector<std::string>& args, const std::string& input) {
  const std::string base = dir.Sub("cli-" + std::to_string(n));
  WriteFile(base + ".in", input);
  ProcessOptions o;
  // sh only redirects stdin; the arguments pass through untouched as "$@".
  o.argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" < '" + base + ".in'", CliPath()};
  for (auto& a : args) o.argv.push_back(a);
  o.stdout_path = base + ".out";
  o.stderr_path = base + ".err";
  Process p(o);
  CliResult r;
  if (!p.Start()) return r;
  auto st = p.Wait(std::chrono::seconds(60));
  if (!st) {
    ADD_FAILURE() << "dlog did not exit in time";
    p.Kill9AndWait();
  } else if (WIFEXITED(*st)) {
    r.code = WEXITSTATUS(*st);
  }
  r.out = ReadFile(o.stdout_path);
  r.err = ReadFile(o.stderr_path);
  return r;
}

// A user error: exit code 1, exactly one line on stderr containing `needle`.
inline void ExpectUserError(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

inline std::vector<std::string> Numbers(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i <= to; ++i) v.push_back("record-" + std::to_string(i));
  return v;
}

// Payloads as given, DLSNs strictly increasing.
inline void ExpectInOrder(const std::vector<TailLine>& recs, const std::vector<std::string>& payloads) {
  ASSERT_EQ(recs.size(), payloads.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i].payload, payloads[i]) << "record " << i;
    EXPECT_GE(recs[i].dlsn.seq, 0) << recs[i].dlsn_text;
    if (i > 0) EXPECT_LT(recs[i - 1].dlsn, recs[i].dlsn) << recs[i - 1].dlsn_text << " then " << recs[i].dlsn_text;
  }
}

}  // namespace dlog::test
