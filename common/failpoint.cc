#include "common/failpoint.h"

#include <atomic>
#include <cstdlib>
#include <map>

#include "common/logging.h"
#include "common/thread_annotations.h"

namespace dlog::failpoint {
namespace {

struct Registry {
  Mutex mu;
  std::map<std::string, int, std::less<>> armed DLOG_GUARDED_BY(mu);
  std::atomic<int> armed_count{0};

  Registry() { LoadEnv(); }

  void LoadEnv() {
    const char* env = std::getenv("DLOG_FAILPOINTS");
    if (env == nullptr) return;
    std::string_view s(env);
    while (!s.empty()) {
      size_t comma = s.find(',');
      std::string_view item = s.substr(0, comma);
      s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
      size_t eq = item.find('=');
      std::string name(item.substr(0, eq));
      int times = 1;
      if (eq != std::string_view::npos) {
        std::string v(item.substr(eq + 1));
        times = v == "always" ? -1 : v == "once" ? 1 : std::atoi(v.c_str());
      }
      if (!name.empty()) {
        MutexLock l(&mu);
        armed[name] = times;
        armed_count.store(static_cast<int>(armed.size()));
      }
    }
  }
};

Registry& Reg() {
  static Registry r;
  return r;
}

}  // namespace

void Arm(std::string_view name, int times) {
  Registry& r = Reg();
  MutexLock l(&r.mu);
  r.armed[std::string(name)] = times;
  r.armed_count.store(static_cast<int>(r.armed.size()));
}

void Disarm(std::string_view name) {
  Registry& r = Reg();
  MutexLock l(&r.mu);
  auto it = r.armed.find(name);
  if (it != r.armed.end()) r.armed.erase(it);
  r.armed_count.store(static_cast<int>(r.armed.size()));
}

void DisarmAll() {
  Registry& r = Reg();
  MutexLock l(&r.mu);
  r.armed.clear();
  r.armed_count.store(0);
}

bool Fire(std::string_view name) {
  Registry& r = Reg();
  if (r.armed_count.load(std::memory_order_relaxed) == 0) return false;
  MutexLock l(&r.mu);
  auto it = r.armed.find(name);
  if (it == r.armed.end()) return false;
  if (it->second > 0 && --it->second == 0) {
    r.armed.erase(it);
    r.armed_count.store(static_cast<int>(r.armed.size()));
  }
  DLOG_WARN << "failpoint fired: " << name;
  return true;
}

}  // namespace dlog::failpoint
