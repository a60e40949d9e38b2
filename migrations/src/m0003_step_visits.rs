//! How many times `next` rules sent each execution to each step: the guard that stops a loop
//! from running away. Null until a rule first sends the execution somewhere.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Executions {
    Table,
    Visits,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Executions::Table)
                    .add_column(ColumnDef::new(Executions::Visits).json_binary().null())
                    .to_owned(),
            )
            .await
    }
}
