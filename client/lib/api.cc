// The public handles: thin forwarding to the *Impl classes. Every blocking
// call is its async twin plus a wait (refused on the loop thread).
#include "client/lib/client_impl.h"
#include "client/lib/consumer_impl.h"
#include "client/lib/errors.h"
#include "client/lib/producer_impl.h"
#include "client/lib/sync.h"
#include "dlog/client.h"

namespace dlog::client {
namespace {

const std::string kNoName;

Status NoImpl(const char* what) {
  return Err(ClientErrc::kIllegalState, std::string(what) + " on an empty handle (not created by a Client)");
}

}  // namespace

// ---------------------------------------------------------------- Client

Client::Client(std::shared_ptr<ClientImpl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Client>> Client::Create(ClientConfig config) {
  DLOG_ASSIGN_OR_RETURN(auto impl, ClientImpl::Create(std::move(config)));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::~Client() { IgnoreError(Close()); }

Status Client::Close() { return impl_->Close(); }

const ClientConfig& Client::config() const { return impl_->config(); }

Result<Producer> Client::CreateProducer(const std::string& topic, ProducerConfig config) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("CreateProducer"));
  return WaitFor<Result<Producer>>([&](auto cb) { CreateProducerAsync(topic, std::move(config), std::move(cb)); });
}

void Client::CreateProducerAsync(const std::string& topic, ProducerConfig config,
                                 std::function<void(Result<Producer>)> callback) {
  impl_->CreateProducer(topic, std::move(config), std::move(callback));
}

Result<Consumer> Client::Subscribe(const std::string& topic, const std::string& subscription, ConsumerConfig config) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("Subscribe"));
  return WaitFor<Result<Consumer>>(
      [&](auto cb) { SubscribeAsync(topic, subscription, std::move(config), std::move(cb)); });
}

void Client::SubscribeAsync(const std::string& topic, const std::string& subscription, ConsumerConfig config,
                            std::function<void(Result<Consumer>)> callback) {
  impl_->Subscribe(topic, subscription, std::move(config), true, ReaderConfig{}, std::move(callback));
}

Result<Reader> Client::CreateReader(const std::string& topic, ReaderConfig config) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("CreateReader"));
  return WaitFor<Result<Reader>>([&](auto cb) { CreateReaderAsync(topic, std::move(config), std::move(cb)); });
}

void Client::CreateReaderAsync(const std::string& topic, ReaderConfig config,
                               std::function<void(Result<Reader>)> callback) {
  std::string sub =
      "reader-" + std::to_string(reinterpret_cast<uintptr_t>(&config) ^ static_cast<uintptr_t>(std::random_device{}()));
  ConsumerConfig cc;
  cc.receiver_queue_size = config.receiver_queue_size;
  impl_->Subscribe(topic, sub, std::move(cc), false, std::move(config),
                   [callback = std::move(callback)](Result<Consumer> c) {
                     if (!c.ok()) return callback(c.status());
                     callback(Reader(std::move(c).value()));
                   });
}

Result<int32_t> Client::GetPartitionCount(const std::string& topic) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("GetPartitionCount"));
  return WaitFor<Result<int32_t>>([&](auto cb) { GetPartitionCountAsync(topic, std::move(cb)); });
}
void Client::GetPartitionCountAsync(const std::string& topic, std::function<void(Result<int32_t>)> callback) {
  impl_->PartitionCount(topic, std::move(callback));
}

Status Client::CreateTopic(const std::string& topic, int32_t partitions) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("CreateTopic"));
  return WaitFor<Status>([&](auto cb) { CreateTopicAsync(topic, partitions, std::move(cb)); });
}
void Client::CreateTopicAsync(const std::string& topic, int32_t partitions, ResultCallback callback) {
  impl_->CreateTopic(topic, partitions, std::move(callback));
}

Status Client::DeleteTopic(const std::string& topic, bool force) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("DeleteTopic"));
  return WaitFor<Status>([&](auto cb) { DeleteTopicAsync(topic, force, std::move(cb)); });
}
void Client::DeleteTopicAsync(const std::string& topic, bool force, ResultCallback callback) {
  impl_->DeleteTopic(topic, force, std::move(callback));
}

Result<std::vector<std::string>> Client::ListTopics(const std::string& namespace_name) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("ListTopics"));
  return WaitFor<Result<std::vector<std::string>>>([&](auto cb) { ListTopicsAsync(namespace_name, std::move(cb)); });
}
void Client::ListTopicsAsync(const std::string& namespace_name,
                             std::function<void(Result<std::vector<std::string>>)> callback) {
  impl_->ListTopics(namespace_name, std::move(callback));
}

Result<TopicStats> Client::GetTopicStats(const std::string& topic) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("GetTopicStats"));
  return WaitFor<Result<TopicStats>>([&](auto cb) { GetTopicStatsAsync(topic, std::move(cb)); });
}
void Client::GetTopicStatsAsync(const std::string& topic, std::function<void(Result<TopicStats>)> callback) {
  impl_->TopicStatsOf(topic, std::move(callback));
}

Result<std::vector<SubscriptionStats>> Client::ListSubscriptions(const std::string& topic) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("ListSubscriptions"));
  return WaitFor<Result<std::vector<SubscriptionStats>>>(
      [&](auto cb) { ListSubscriptionsAsync(topic, std::move(cb)); });
}
void Client::ListSubscriptionsAsync(const std::string& topic,
                                    std::function<void(Result<std::vector<SubscriptionStats>>)> callback) {
  impl_->ListSubscriptions(topic, std::move(callback));
}

Status Client::ResetCursor(const std::string& topic, const std::string& subscription, const CursorTarget& target) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("ResetCursor"));
  return WaitFor<Status>([&](auto cb) { ResetCursorAsync(topic, subscription, target, std::move(cb)); });
}
void Client::ResetCursorAsync(const std::string& topic, const std::string& subscription, const CursorTarget& target,
                              ResultCallback callback) {
  impl_->ResetCursor(topic, subscription, target, std::move(callback));
}

Status Client::DeleteSubscription(const std::string& topic, const std::string& subscription) {
  DLOG_RETURN_IF_ERROR(impl_->CheckBlockingAllowed("DeleteSubscription"));
  return WaitFor<Status>([&](auto cb) { DeleteSubscriptionAsync(topic, subscription, std::move(cb)); });
}
void Client::DeleteSubscriptionAsync(const std::string& topic, const std::string& subscription,
                                     ResultCallback callback) {
  impl_->DeleteSubscription(topic, subscription, std::move(callback));
}

// ---------------------------------------------------------------- Producer

const std::string& Producer::topic() const { return impl_ ? impl_->topic() : kNoName; }
std::string Producer::producer_name() const { return impl_ ? impl_->name() : std::string(); }
int32_t Producer::partitions() const { return impl_ ? impl_->partitions() : 0; }
int64_t Producer::last_sequence_id() const { return impl_ ? impl_->last_sequence_id() : -1; }
int Producer::pending_messages() const { return impl_ ? impl_->pending_messages() : 0; }
bool Producer::is_connected() const { return impl_ && impl_->connected(); }

Result<MessageId> Producer::Send(Message message) {
  if (!impl_) return NoImpl("Send");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Send"));
  return WaitFor<Result<MessageId>>([&](auto cb) { impl_->SendAsync(std::move(message), std::move(cb)); });
}

void Producer::SendAsync(Message message, SendCallback callback) {
  if (!impl_) return callback(NoImpl("SendAsync"));
  impl_->SendAsync(std::move(message), std::move(callback));
}

Status Producer::Flush() {
  if (!impl_) return NoImpl("Flush");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Flush"));
  return WaitFor<Status>([&](auto cb) { impl_->FlushAsync(std::move(cb)); });
}

void Producer::FlushAsync(ResultCallback callback) {
  if (!impl_) return callback(NoImpl("FlushAsync"));
  impl_->FlushAsync(std::move(callback));
}

Status Producer::Close() {
  if (!impl_) return NoImpl("Close");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Close"));
  return WaitFor<Status>([&](auto cb) { impl_->CloseAsync(std::move(cb)); });
}

void Producer::CloseAsync(ResultCallback callback) {
  if (!impl_) return callback(NoImpl("CloseAsync"));
  impl_->CloseAsync(std::move(callback));
}

// ---------------------------------------------------------------- Consumer

const std::string& Consumer::topic() const { return impl_ ? impl_->topic() : kNoName; }
const std::string& Consumer::subscription() const { return impl_ ? impl_->subscription() : kNoName; }
int32_t Consumer::partitions() const { return impl_ ? impl_->partitions() : 0; }
bool Consumer::is_connected() const { return impl_ && impl_->connected(); }

Result<Message> Consumer::Receive(int64_t timeout_ms) {
  if (!impl_) return NoImpl("Receive");
  return impl_->Receive(timeout_ms);
}

void Consumer::ReceiveAsync(ReceiveCallback callback) {
  if (!impl_) return callback(NoImpl("ReceiveAsync"));
  impl_->ReceiveAsync(std::move(callback));
}

Status Consumer::Acknowledge(const MessageId& id) {
  if (!impl_) return NoImpl("Acknowledge");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Acknowledge"));
  return WaitFor<Status>([&](auto cb) { impl_->AckAsync(id, false, std::move(cb)); });
}
void Consumer::AcknowledgeAsync(const MessageId& id, ResultCallback callback) {
  if (!impl_) return callback(NoImpl("AcknowledgeAsync"));
  impl_->AckAsync(id, false, std::move(callback));
}
Status Consumer::AcknowledgeCumulative(const MessageId& id) {
  if (!impl_) return NoImpl("AcknowledgeCumulative");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("AcknowledgeCumulative"));
  return WaitFor<Status>([&](auto cb) { impl_->AckAsync(id, true, std::move(cb)); });
}
void Consumer::AcknowledgeCumulativeAsync(const MessageId& id, ResultCallback callback) {
  if (!impl_) return callback(NoImpl("AcknowledgeCumulativeAsync"));
  impl_->AckAsync(id, true, std::move(callback));
}
void Consumer::NegativeAcknowledge(const MessageId& id) {
  if (impl_) impl_->Nack(id);
}
void Consumer::RedeliverUnacknowledgedMessages() {
  if (impl_) impl_->RedeliverAll();
}

Status Consumer::Seek(const MessageId& id) {
  if (!impl_) return NoImpl("Seek");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Seek"));
  return WaitFor<Status>([&](auto cb) { impl_->SeekAsync(id, 0, std::move(cb)); });
}
void Consumer::SeekAsync(const MessageId& id, ResultCallback callback) {
  if (!impl_) return callback(NoImpl("SeekAsync"));
  impl_->SeekAsync(id, 0, std::move(callback));
}
Status Consumer::SeekToTime(int64_t publish_time_ms) {
  if (!impl_) return NoImpl("SeekToTime");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("SeekToTime"));
  return WaitFor<Status>([&](auto cb) { impl_->SeekAsync(std::nullopt, publish_time_ms, std::move(cb)); });
}
void Consumer::SeekToTimeAsync(int64_t publish_time_ms, ResultCallback callback) {
  if (!impl_) return callback(NoImpl("SeekToTimeAsync"));
  impl_->SeekAsync(std::nullopt, publish_time_ms, std::move(callback));
}

Result<std::vector<MessageId>> Consumer::GetLastMessageIds() {
  if (!impl_) return NoImpl("GetLastMessageIds");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("GetLastMessageIds"));
  return WaitFor<Result<std::vector<MessageId>>>([&](auto cb) { impl_->GetLastIdsAsync(std::move(cb)); });
}
void Consumer::GetLastMessageIdsAsync(std::function<void(Result<std::vector<MessageId>>)> callback) {
  if (!impl_) return callback(NoImpl("GetLastMessageIdsAsync"));
  impl_->GetLastIdsAsync(std::move(callback));
}

Status Consumer::Unsubscribe() {
  if (!impl_) return NoImpl("Unsubscribe");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Unsubscribe"));
  return WaitFor<Status>([&](auto cb) { impl_->UnsubscribeAsync(std::move(cb)); });
}
void Consumer::UnsubscribeAsync(ResultCallback callback) {
  if (!impl_) return callback(NoImpl("UnsubscribeAsync"));
  impl_->UnsubscribeAsync(std::move(callback));
}

Status Consumer::Close() {
  if (!impl_) return NoImpl("Close");
  DLOG_RETURN_IF_ERROR(impl_->client()->CheckBlockingAllowed("Close"));
  return WaitFor<Status>([&](auto cb) { impl_->CloseAsync(std::move(cb)); });
}
void Consumer::CloseAsync(ResultCallback callback) {
  if (!impl_) return callback(NoImpl("CloseAsync"));
  impl_->CloseAsync(std::move(callback));
}

// ---------------------------------------------------------------- Reader

const std::string& Reader::topic() const { return consumer_.topic(); }
Result<Message> Reader::ReadNext(int64_t timeout_ms) { return consumer_.Receive(timeout_ms); }
void Reader::ReadNextAsync(ReadCallback callback) { consumer_.ReceiveAsync(std::move(callback)); }

Result<bool> Reader::HasMessageAvailable() {
  if (!consumer_.impl_) return NoImpl("HasMessageAvailable");
  DLOG_RETURN_IF_ERROR(consumer_.impl_->client()->CheckBlockingAllowed("HasMessageAvailable"));
  return WaitFor<Result<bool>>([&](auto cb) { consumer_.impl_->HasMessageAvailableAsync(std::move(cb)); });
}
void Reader::HasMessageAvailableAsync(std::function<void(Result<bool>)> callback) {
  if (!consumer_.impl_) return callback(NoImpl("HasMessageAvailableAsync"));
  consumer_.impl_->HasMessageAvailableAsync(std::move(callback));
}
Status Reader::Seek(const MessageId& id) { return consumer_.Seek(id); }
Status Reader::SeekToTime(int64_t publish_time_ms) { return consumer_.SeekToTime(publish_time_ms); }
Status Reader::Close() { return consumer_.Close(); }
void Reader::CloseAsync(ResultCallback callback) { consumer_.CloseAsync(std::move(callback)); }

}  // namespace dlog::client
