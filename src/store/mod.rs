//! Persistence: SeaORM over SQLite (the embedded default) or PostgreSQL.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, and every write transaction starts with
//! `BEGIN IMMEDIATE`, so a writer takes the write lock up front instead of failing to upgrade a
//! read lock halfway through; one process owns the file. On PostgreSQL the migrations run under
//! an advisory lock so that replicas starting together do not race, and execution rows are
//! locked with `FOR UPDATE` inside each transition.

pub mod entity;

use std::time::Duration;

use orgata_migrations::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

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
        let store = Store { db, backend };
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

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.db.begin_with_options(options).await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }
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
