//! The projectors' integration tests, one module per subject, in one binary: every test binary
//! links the whole AWS SDK again, so one per crate keeps the test build short.

mod articles_projector;
mod fanout;
mod feed_projector;
mod lambda;
mod search_projector;
mod support;
mod users_projector;
mod versions;
