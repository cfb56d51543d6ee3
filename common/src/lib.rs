//! Shared plumbing of the services: configuration, the AWS SDK configuration, table creation, JWT, telemetry, the HTTP error type and the projections' positions.

pub mod applied;
pub mod auth;
pub mod aws;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod error;
pub mod jwt;
pub mod openapi;
pub mod projections;
pub mod responses;
pub mod tables;
pub mod telemetry;
