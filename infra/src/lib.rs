//! The resources of Conduit-ES (one definition for the local stack and the AWS template), their provisioning, the local emulators and the local emulation of Lambda's event source mappings.

pub mod emulators;
pub mod esm;
pub mod resources;
pub mod testkit;
