//! Runtimes, executions, their history, checkpoints and interventions.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runtimes {
    Table,
    Id,
    Version,
    Environment,
    PackageName,
    PackageVersion,
    Definition,
    DeployedBy,
    DeployedAt,
}

#[derive(DeriveIden)]
enum Executions {
    Table,
    Id,
    RuntimeId,
    RuntimeVersion,
    Environment,
    Playbook,
    Status,
    Mode,
    Input,
    State,
    Steps,
    CurrentStepIndex,
    Attempt,
    StepStarted,
    GateOpen,
    WakeAt,
    Epoch,
    Output,
    Error,
    ParentId,
    ParentStepIndex,
    ParentEpoch,
    PausedFrom,
    StartedBy,
    IdempotencyKey,
    LastSeq,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    ExecutionId,
    Seq,
    EventType,
    At,
    Actor,
    Step,
    Payload,
    RuntimeId,
    Environment,
}

#[derive(DeriveIden)]
enum Checkpoints {
    Table,
    ExecutionId,
    Seq,
    StepIndex,
    Step,
    Steps,
    State,
    At,
}

#[derive(DeriveIden)]
enum Interventions {
    Table,
    Id,
    ExecutionId,
    RuntimeId,
    Environment,
    Step,
    StepIndex,
    Epoch,
    Kind,
    Status,
    Prompt,
    FormSchema,
    AllowedActions,
    Role,
    Response,
    Notes,
    ResolvedBy,
    ResolvedAt,
    CreatedAt,
}

fn text(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string().not_null().take()
}

fn text_null(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string().null().take()
}

fn json(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).json_binary().not_null().take()
}

fn json_null(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).json_binary().null().take()
}

fn time(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().not_null().take()
}

fn time_null(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runtimes::Table)
                    .if_not_exists()
                    .col(text(Runtimes::Id))
                    .col(ColumnDef::new(Runtimes::Version).integer().not_null())
                    .col(text(Runtimes::Environment))
                    .col(text(Runtimes::PackageName))
                    .col(text(Runtimes::PackageVersion))
                    .col(json(Runtimes::Definition))
                    .col(text(Runtimes::DeployedBy))
                    .col(time(Runtimes::DeployedAt))
                    .primary_key(Index::create().col(Runtimes::Id).col(Runtimes::Version))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Executions::Table)
                    .if_not_exists()
                    .col(text(Executions::Id).primary_key().take())
                    .col(text(Executions::RuntimeId))
                    .col(ColumnDef::new(Executions::RuntimeVersion).integer().not_null())
                    .col(text(Executions::Environment))
                    .col(text(Executions::Playbook))
                    .col(text(Executions::Status))
                    .col(text(Executions::Mode))
                    .col(json(Executions::Input))
                    .col(json(Executions::State))
                    .col(json(Executions::Steps))
                    .col(ColumnDef::new(Executions::CurrentStepIndex).integer().not_null())
                    .col(ColumnDef::new(Executions::Attempt).integer().not_null())
                    .col(ColumnDef::new(Executions::StepStarted).boolean().not_null())
                    .col(ColumnDef::new(Executions::GateOpen).boolean().not_null())
                    .col(time_null(Executions::WakeAt))
                    .col(ColumnDef::new(Executions::Epoch).big_integer().not_null())
                    .col(json_null(Executions::Output))
                    .col(text_null(Executions::Error))
                    .col(text_null(Executions::ParentId))
                    .col(ColumnDef::new(Executions::ParentStepIndex).integer().null())
                    .col(ColumnDef::new(Executions::ParentEpoch).big_integer().null())
                    .col(text_null(Executions::PausedFrom))
                    .col(text(Executions::StartedBy))
                    .col(text_null(Executions::IdempotencyKey))
                    .col(ColumnDef::new(Executions::LastSeq).big_integer().not_null())
                    .col(text_null(Executions::LeaseOwner))
                    .col(time_null(Executions::LeaseUntil))
                    .col(time(Executions::CreatedAt))
                    .col(time(Executions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Workers claim runnable executions by status and lease expiry.
        manager
            .create_index(
                Index::create()
                    .name("executions_claim")
                    .table(Executions::Table)
                    .col(Executions::Status)
                    .col(Executions::LeaseUntil)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Listing pages through a runtime's executions, newest first; ids are UUID v7.
        manager
            .create_index(
                Index::create()
                    .name("executions_runtime")
                    .table(Executions::Table)
                    .col(Executions::RuntimeId)
                    .col(Executions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("executions_environment")
                    .table(Executions::Table)
                    .col(Executions::Environment)
                    .col(Executions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("executions_parent")
                    .table(Executions::Table)
                    .col(Executions::ParentId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // A client that repeats a start with the same key gets the same execution.
        manager
            .create_index(
                Index::create()
                    .name("executions_idempotency")
                    .table(Executions::Table)
                    .col(Executions::RuntimeId)
                    .col(Executions::IdempotencyKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(text(Events::ExecutionId))
                    .col(ColumnDef::new(Events::Seq).big_integer().not_null())
                    .col(text(Events::EventType))
                    .col(time(Events::At))
                    .col(text(Events::Actor))
                    .col(text_null(Events::Step))
                    .col(json(Events::Payload))
                    .col(text(Events::RuntimeId))
                    .col(text(Events::Environment))
                    .primary_key(Index::create().col(Events::ExecutionId).col(Events::Seq))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Checkpoints::Table)
                    .if_not_exists()
                    .col(text(Checkpoints::ExecutionId))
                    .col(ColumnDef::new(Checkpoints::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Checkpoints::StepIndex).integer().not_null())
                    .col(text_null(Checkpoints::Step))
                    .col(json(Checkpoints::Steps))
                    .col(json(Checkpoints::State))
                    .col(time(Checkpoints::At))
                    .primary_key(Index::create().col(Checkpoints::ExecutionId).col(Checkpoints::Seq))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Interventions::Table)
                    .if_not_exists()
                    .col(text(Interventions::Id).primary_key().take())
                    .col(text(Interventions::ExecutionId))
                    .col(text(Interventions::RuntimeId))
                    .col(text(Interventions::Environment))
                    .col(text(Interventions::Step))
                    .col(ColumnDef::new(Interventions::StepIndex).integer().not_null())
                    .col(ColumnDef::new(Interventions::Epoch).big_integer().not_null())
                    .col(text(Interventions::Kind))
                    .col(text(Interventions::Status))
                    .col(text_null(Interventions::Prompt))
                    .col(json(Interventions::FormSchema))
                    .col(json(Interventions::AllowedActions))
                    .col(text_null(Interventions::Role))
                    .col(json_null(Interventions::Response))
                    .col(text_null(Interventions::Notes))
                    .col(text_null(Interventions::ResolvedBy))
                    .col(time_null(Interventions::ResolvedAt))
                    .col(time(Interventions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("interventions_execution")
                    .table(Interventions::Table)
                    .col(Interventions::ExecutionId)
                    .col(Interventions::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("interventions_pending")
                    .table(Interventions::Table)
                    .col(Interventions::Status)
                    .col(Interventions::Environment)
                    .col(Interventions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
