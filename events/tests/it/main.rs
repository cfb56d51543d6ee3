//! The event store's integration tests, one module per subject, in one binary: every test
//! binary links the whole AWS SDK again, so one per crate keeps the test build short.

mod posted;
mod snapshots;
mod store;
