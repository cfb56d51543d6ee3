//! Black-box tests of the HTTP API: one local stack for the whole binary, every test with its
//! own users so that the tests run in parallel and again on the same emulators.

mod articles;
mod auth;
mod comments;
mod consistency;
mod cors;
mod favorites;
mod feed;
mod listing;
mod profiles;
mod tags;
mod users;
