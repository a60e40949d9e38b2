//! Orgata: a server for business processes with people in the loop.
//!
//! `engine` is the protocol-agnostic core; `package` the format organisations write; `store`
//! the database; `jq` and `schema` the two languages packages are written in.

pub mod engine;
pub mod jq;
pub mod package;
pub mod schema;
pub mod store;
