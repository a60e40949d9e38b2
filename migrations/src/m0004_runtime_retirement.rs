//! Retiring runtime versions: a retired version starts no new executions (running ones finish
//! on it); the newest version that is not retired is the one new executions use.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runtimes {
    Table,
    RetiredAt,
    RetiredBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Runtimes::Table)
                    .add_column(ColumnDef::new(Runtimes::RetiredAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runtimes::Table)
                    .add_column(ColumnDef::new(Runtimes::RetiredBy).string().null())
                    .to_owned(),
            )
            .await
    }
}
