//! Local emulation of Lambda's event source mappings.
//!
//! The local gateway calls the very handler functions the Lambdas call, with the very event
//! JSON Lambda would deliver: [`StreamMapping`] polls a DynamoDB stream (DynamoDB Streams →
//! `aws_lambda_events::event::dynamodb::Event`, partial batch responses, bisection, retries,
//! on-failure destination, checkpoints) and [`QueueMapping`] polls an SQS queue (SQS →
//! `aws_lambda_events::event::sqs::SqsEvent`, partial batch responses, deletes, retry
//! visibility; the queue's RedrivePolicy does the DLQ). Nothing here knows the domain.
//!
//! Each mapping keeps one batch in flight, logs one `tracing` span per batch, retries AWS
//! errors with a capped backoff and stops between batches when its shutdown future
//! completes. Run each one in its own task:
//!
//! ```text
//! tokio::spawn(StreamMapping::new(arn, checkpoints).run(clients.streams.clone(), handler, shutdown));
//! ```
//!
//! A `run` future is `Send` (spawnable) when the handler is `Send + Sync`, the futures it
//! returns are `Send`, and the shutdown future is `Send`. A handler that panics is treated as
//! a function error, as a crashed Lambda invocation is.

mod checkpoint;
mod failure;
mod json;
mod queue;
mod stream;
mod util;

pub use checkpoint::{
    CheckpointStore, DynamoCheckpoints, MemoryCheckpoints, SEQUENCE_NUMBER_ATTRIBUTE,
};
pub use failure::{
    destination_record, LogOnFailure, MemoryOnFailure, OnFailure, SqsOnFailure, StreamBatchFailure,
    RECORD_NOT_CONVERTIBLE, RETRY_ATTEMPTS_EXHAUSTED,
};
pub use json::{
    dynamodb_event, dynamodb_event_record, dynamodb_record_json, sqs_event, sqs_event_message,
    sqs_message_json, ConversionError,
};
pub use queue::QueueMapping;
pub use stream::StreamMapping;

/// The boxed future the object-safe traits here ([`CheckpointStore`], [`OnFailure`]) return.
pub type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;
