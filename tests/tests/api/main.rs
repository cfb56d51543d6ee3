//! Black-box tests of the HTTP API: one local stack for the whole binary, every test with its
//! own users so that the tests run in parallel and again on the same emulators.

mod articles;
mod auth;
mod comments;
mod consistency;
mod cors;
mod events;
mod favorites;
mod feed;
mod listing;
mod openapi;
mod profiles;
mod read_after_write;
mod read_your_writes;
mod tags;
mod users;
mod views;
