//! The infra crate's integration tests, one module per subject, in one binary.

mod lambda_builds;
mod template;
