//! The protocol edge: GraphQL at the centre, with REST and MCP derived from it. Nothing here
//! implements a business rule; every request goes through the engine.

pub mod catalog;
pub mod context;
pub mod edge;
pub mod graphql;
pub mod mcp;
pub mod ops;
pub mod rest;
pub mod runner;
pub mod schema_fields;
pub mod shapes;
