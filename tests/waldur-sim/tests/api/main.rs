//! The simulator's API tests, one binary: each module drives a real simulator over HTTP.

mod basics;
mod common;
mod consumer;
mod events;
mod faults_inspect;
mod imports_and_keys;
mod transitions;
