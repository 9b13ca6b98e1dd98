// Status and Result<T>: errors are values.
//
// A Status is OK or (domain, code, message). Each module declares its own
// `enum class` of codes and specialises ErrcTraits for it, so a code always
// says which module produced it:
//
//   enum class NodeErrc { kFenced = 3, ... };
//   template <> struct dlog::ErrcTraits<NodeErrc> { ... };
//   return Status::Error(NodeErrc::kFenced, "segment 7 is fenced");
//   if (st.Is(NodeErrc::kFenced)) ...
//
// Thread-safety: values; a Status may be copied and moved across threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/check.h"

namespace dlog {

// One value per module that defines error codes.
enum class ErrorDomain : uint8_t {
  kOk = 0,
  kCommon = 1,
  kNet = 2,
  kProtocol = 3,
  kNode = 4,
  kMetadata = 5,
  kSegment = 6,
  kLog = 7,
  kBroker = 8,
  kClient = 9,
};

const char* DomainName(ErrorDomain d);

// Specialise for each module's error enum:
//   static constexpr ErrorDomain kDomain;
//   static const char* Name(int code);
template <typename E>
struct ErrcTraits;

// Codes every module may use.
enum class CommonErrc : int {
  kInvalidArgument = 1,
  kNotFound = 2,
  kIoError = 3,
  kCorruption = 4,  // data on disk or in a record failed a check: data loss
  kTimeout = 5,
  kUnavailable = 6,  // retryable
  kAborted = 7,
  kInternal = 8,
  kAlreadyExists = 9,
  kOutOfRange = 10,
};

template <>
struct ErrcTraits<CommonErrc> {
  static constexpr ErrorDomain kDomain = ErrorDomain::kCommon;
  static const char* Name(int code);
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status OK() { return Status(); }

  template <typename E>
  static Status Error(E code, std::string message) {
    return Status(ErrcTraits<E>::kDomain, static_cast<int>(code), &ErrcTraits<E>::Name, std::move(message));
  }

  bool ok() const { return domain_ == ErrorDomain::kOk; }
  ErrorDomain domain() const { return domain_; }
  int code() const { return code_; }
  const std::string& message() const {
    static const std::string kEmpty;
    return rep_ ? rep_->message : kEmpty;
  }
  // "domain.CODE_NAME: message", or "OK".
  std::string ToString() const;
  const char* CodeName() const;

  template <typename E>
  bool Is(E code) const {
    return domain_ == ErrcTraits<E>::kDomain && code_ == static_cast<int>(code);
  }

  // Returns a copy whose message is "context: message".
  Status WithContext(std::string_view context) const;

 private:
  using NameFn = const char* (*)(int);
  struct Rep {
    NameFn name;
    std::string message;
  };
  Status(ErrorDomain domain, int code, NameFn name, std::string message)
      : domain_(domain), code_(code), rep_(std::make_shared<const Rep>(Rep{name, std::move(message)})) {}

  ErrorDomain domain_ = ErrorDomain::kOk;
  int code_ = 0;
  std::shared_ptr<const Rep> rep_;  // shared: copying a Status is cheap
};

// The one greppable way to ignore a result on purpose.
template <typename T>
inline void IgnoreError(T&&) {}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    DLOG_CHECK(!std::get<Status>(v_).ok()) << "Result built from an OK status";
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    DLOG_CHECK(ok()) << "value() of failed Result: " << status().ToString();
    return std::get<T>(v_);
  }
  const T& value() const& {
    DLOG_CHECK(ok()) << "value() of failed Result: " << status().ToString();
    return std::get<T>(v_);
  }
  T&& value() && {
    DLOG_CHECK(ok()) << "value() of failed Result: " << status().ToString();
    return std::move(std::get<T>(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace dlog

// Returns the status from the enclosing function if `expr` is not OK.
#define DLOG_RETURN_IF_ERROR(expr)       \
  do {                                   \
    ::dlog::Status dlog_st_ = (expr);    \
    if (!dlog_st_.ok()) return dlog_st_; \
  } while (0)

#define DLOG_CONCAT_INNER(a, b) a##b
#define DLOG_CONCAT(a, b) DLOG_CONCAT_INNER(a, b)
// DLOG_ASSIGN_OR_RETURN(auto x, Foo()); returns Foo()'s status on error.
#define DLOG_ASSIGN_OR_RETURN(lhs, expr) DLOG_ASSIGN_OR_RETURN_IMPL(DLOG_CONCAT(dlog_res_, __LINE__), lhs, expr)
#define DLOG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
