//! Black-box tests of the HTTP API: one local stack for the whole binary, every test with its
//! own users so that the tests run in parallel and again on the same emulators.

mod auth;
mod consistency;
mod cors;
mod profiles;
mod users;
