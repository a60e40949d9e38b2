//! SeaORM entities: one module per table. The tables are created by `migrations/`.

pub mod api_key;
pub mod checkpoint;
pub mod event;
pub mod execution;
pub mod intervention;
pub mod runtime;
