//! Orgata: a server for business processes with people in the loop.
//!
//! `engine` is the protocol-agnostic core; `package` the format organisations write; `store`
//! the database; `jq` and `schema` the two languages packages are written in; `api` the
//! protocols over the engine; `server` the HTTP server; `contract` what frontends build on.

pub mod api;
pub mod config;
pub mod contract;
pub mod deploy;
pub mod engine;
pub mod jq;
pub mod package;
pub mod package_tests;
pub mod schema;
pub mod server;
pub mod store;

pub use config::Config;

/// Counts bytes per thread so that jq evaluations can be held to a size budget (see
/// [`jq::CountingAllocator`]).
#[global_allocator]
static ALLOCATOR: jq::CountingAllocator = jq::CountingAllocator;
pub use server::serve;
