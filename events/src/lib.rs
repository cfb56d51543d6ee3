//! The contract of Conduit-ES: domain events, their stored schema, aggregates, commands and the DynamoDB event store.

pub mod article;
pub mod comment;
pub mod envelope;
pub mod favorite;
pub mod posted;
pub mod repository;
pub mod snapshot;
pub mod store;
pub mod time_format;
pub mod user;
pub mod views;

pub use envelope::{
    EventSchema, Metadata, NewEvent, SchemaError, StoredEvent, UniqueChange, Upcaster,
};
pub use repository::{Repository, RepositoryError};
pub use snapshot::{Snapshot, Snapshotted};
pub use store::{Commit, EventStore, StoreError, Tables};
