//! The database schema of Orgata, as sea-orm-migration migrations that run at start-up on SQLite
//! and PostgreSQL alike. Migrations are append-only: a released migration is never edited.

use sea_orm_migration::prelude::*;

pub use sea_orm_migration::MigratorTrait;

mod m0001_initial;
mod m0002_api_keys;
mod m0003_step_visits;
mod m0004_runtime_retirement;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_api_keys::Migration),
            Box::new(m0003_step_visits::Migration),
            Box::new(m0004_runtime_retirement::Migration),
        ]
    }
}
