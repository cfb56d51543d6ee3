//! The definitions of Conduit-ES's AWS resources besides the tables' shapes (those are in
//! `schema`): the topic, the projector queues, the event source mappings, the functions and
//! their rights, and the deployment template generated from them. Plain data and JSON, no SDK:
//! `local-aws` provisions the same definitions on the emulators.

pub mod resources;
pub mod template;
