//! The search read model's integration tests, one module per subject, in one binary: every test
//! binary links the whole AWS SDK again, so one per crate keeps the test build short.

mod conformance;
mod embedded;
mod opensearch_node;
mod opensearch_wire;
