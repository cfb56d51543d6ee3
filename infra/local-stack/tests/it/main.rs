//! The local stack's integration tests, one module per subject, in one binary: every test
//! binary links the whole AWS SDK again, so one per crate keeps the test build short.

mod openapi_routes;
mod restart;
mod stopped_projector;
mod without_metadata;
