//! Errors of bus operations.

use std::time::Duration;

use super::topic::TopicError;
use crate::messages::MessageError;

/// Why a bus operation failed. Each variant names the thing and the cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The topic or pattern is malformed.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The message is invalid (unknown kind, wrong channel, bad or oversized payload).
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A `backpressure` subscriber's inbox stayed full for the whole timeout.
    /// The message was delivered to every other subscriber.
    #[error("subscriber `{subscriber}` did not make room in its inbox within {timeout:?} (topic `{topic}`); message not delivered to it")]
    Backpressure {
        /// Name of the subscriber whose inbox was full.
        subscriber: String,
        /// Topic of the message.
        topic: String,
        /// How long the publisher waited.
        timeout: Duration,
    },
    /// `direct_broadcast` named a node that is not this one.
    #[error("unknown node `{node}`: this host is the single node `{local}`")]
    UnknownNode {
        /// The requested node.
        node: String,
        /// This node's name.
        local: String,
    },
    /// A subscriber name was empty.
    #[error("invalid subscriber name: must not be empty")]
    EmptySubscriberName,
}
