//! Persistence: SeaORM over SQLite (the embedded default) or PostgreSQL.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, and every write transaction starts with
//! `BEGIN IMMEDIATE`, so a writer takes the write lock up front instead of failing to upgrade a
//! read lock halfway through; one process owns the file. On PostgreSQL the migrations run under
//! an advisory lock so that replicas starting together do not race, and execution rows are
//! locked with `FOR UPDATE` inside each transition.
//!
//! `executions`, `history`, `interventions`, `leases`, `runtimes` and `api_keys` hold every
//! statement the engine runs, under names that say what they do; the engine decides what to
//! store, these modules how (`tests/tidy.rs` keeps query builders out of the engine).

pub(crate) mod api_keys;
mod columns;
pub mod entity;
pub(crate) mod executions;
mod group;
pub(crate) mod history;
pub(crate) mod interventions;
pub(crate) mod leases;
pub(crate) mod runtimes;

use std::time::Duration;

use orgata_migrations::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

/// Sends `payload` on PostgreSQL channel `channel`, delivered to every listener when the
/// transaction commits.
pub(crate) async fn notify(db: &impl ConnectionTrait, channel: &str, payload: String) -> Result<(), DbErr> {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), payload.into()],
    );
    db.execute_raw(statement).await?;
    Ok(())
}

/// An arbitrary key that every Orgata replica uses for the migration lock.
const MIGRATION_LOCK_KEY: i64 = 0x6f72_6761_7461;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool and what it needs to know about its database.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    /// SQLite's writers share transactions (group commit); PostgreSQL's run side by side and
    /// share `fsync`s in the server's own WAL group commit.
    group: Option<group::Group>,
}

/// A write transaction: a database transaction of its own (PostgreSQL), or a turn in a shared
/// one (SQLite, see [`group`]). Statements run on [`Write::db`].
pub struct Write {
    db: DatabaseTransaction,
    turn: Option<group::Turn>,
}

impl Write {
    pub fn db(&self) -> &DatabaseTransaction {
        &self.db
    }

    /// Returns once the work is durable.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.turn {
            Some(turn) => turn.commit(self.db).await,
            None => self.db.commit().await,
        }
    }

    /// Discards the work.
    pub async fn rollback(self) -> Result<(), DbErr> {
        match self.turn {
            Some(turn) => {
                let _ = turn.rollback(self.db).await;
                Ok(())
            }
            None => self.db.rollback().await,
        }
    }

    /// Discards the work without waiting (for `Drop`): on a task, so that SQLite's write lock
    /// is not kept until the connection is next used.
    pub fn rollback_later(self) {
        match self.turn {
            Some(turn) => {
                turn.rollback(self.db);
            }
            None => {
                tokio::spawn(async move {
                    if let Err(error) = self.db.rollback().await {
                        tracing::warn!(%error, "rolling back an abandoned transaction failed");
                    }
                });
            }
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`) and applies migrations.
    /// On PostgreSQL, `schema` (created if missing) holds Orgata's tables instead of `public`.
    pub async fn connect(url: &str, pool_size: u32, schema: Option<&str>) -> Result<Store, DbErr> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbErr::Custom(format!(
                "unsupported database URL `{}`: expected sqlite://… or postgres://…",
                redact(url)
            )));
        };
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(pool_size.max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .sqlx_logging(false);
        if backend == Backend::Sqlite {
            options.map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
            });
        }
        if let Some(schema) = schema.filter(|_| backend == Backend::Postgres) {
            if !schema.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_') {
                return Err(DbErr::Custom(format!(
                    "schema name `{schema}` may only hold letters, digits and underscores"
                )));
            }
            let bootstrap = Database::connect(url.to_owned()).await?;
            bootstrap.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await?;
            bootstrap.close().await?;
            options.set_schema_search_path(schema.to_owned());
        }
        let db = Database::connect(options).await?;
        let group = (backend == Backend::Sqlite).then(group::Group::default);
        let store = Store { db, backend, group };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), DbErr> {
        match self.backend {
            Backend::Sqlite => orgata_migrations::Migrator::up(&self.db, None).await,
            Backend::Postgres => {
                // The transaction-scoped lock is released by the commit, whatever happens.
                let transaction = self.begin().await?;
                transaction
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_advisory_xact_lock($1)",
                        [MIGRATION_LOCK_KEY.into()],
                    ))
                    .await?;
                orgata_migrations::Migrator::up(&transaction, None).await?;
                transaction.commit().await
            }
        }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a database transaction of its own (`BEGIN IMMEDIATE` on SQLite), outside any
    /// group: for migrations and tools.
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        begin_immediate(&self.db).await
    }

    /// Starts a write transaction; on SQLite, a turn in the current group commit.
    pub async fn write(&self) -> Result<Write, DbErr> {
        match &self.group {
            Some(group) => {
                let (turn, db) = group.begin(&self.db).await?;
                Ok(Write { db, turn: Some(turn) })
            }
            None => Ok(Write { db: self.begin().await?, turn: None }),
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }
}

/// `BEGIN IMMEDIATE` on SQLite, so that a writer takes the write lock up front; `BEGIN`
/// elsewhere.
async fn begin_immediate(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    db.begin_with_options(options).await
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url.parse::<reqwest::Url>() {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The default database: a SQLite file in the working directory, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}
