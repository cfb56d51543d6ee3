//! The resources of Conduit-ES (one definition for the local stack and the AWS template), their provisioning, the local emulators, the local emulation of Lambda's event source mappings, and a local Lambda Runtime API that runs the real Lambda binaries in tests.

pub mod emulators;
pub mod esm;
pub mod resources;
pub mod runtime_api;
pub mod template;
pub mod testkit;
