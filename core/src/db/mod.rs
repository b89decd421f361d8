//! All SQL of the platform. Functions take an executor (pool, connection or transaction) so
//! the caller decides the transaction; queries are compile-checked (`query!`) against the
//! committed `.sqlx/` cache.

pub mod admin;
pub mod bench;
pub mod catalog;
pub mod collections;
pub mod erasure;
pub mod exports;
pub mod jobs;
pub mod lean;
pub mod maintenance;
pub mod media;
pub mod memories;
pub mod migrate;
pub mod objects;
pub mod pipeline;
pub mod poll;
pub mod queue;
pub mod reconcile;
pub mod replica;
pub mod report;
pub mod reprocess;
pub mod resumable;
pub mod seed;
pub mod sessions;
pub mod settings;
pub mod tx;
pub mod uploads;
pub mod users;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::DatabaseConfig;

/// Idle this long, a pooled connection is pinged before it is handed out.
const PING_WHEN_IDLE: Duration = Duration::from_secs(1);

/// How long a request waits for a connection (a free one, or a new one made) before it fails:
/// the web process answers 503 rather than hang while the database or the pooler is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool. Connections are made lazily and re-made after a database restart; a bounded
/// acquire timeout turns "database away" into an error instead of a hang.
pub async fn connect(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    connect_waiting(cfg, ACQUIRE_TIMEOUT).await
}

/// [`connect`] with a longer wait for a free connection: a worker whose steps outnumber its
/// connections queues them rather than failing them (the web process answers 503 instead).
pub async fn connect_waiting(
    cfg: &DatabaseConfig,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    pool_options(cfg, acquire_timeout)
        .connect_with(connect_options(cfg, &cfg.database_url)?)
        .await
}

/// A worker process's pools, each waiting up to `wait` for a connection: where its
/// transactions begin ([`tx::TxPool`]: the lean pool behind a transaction pooler) and its
/// session pool ([`session_pool`]).
pub async fn pools_waiting(
    cfg: &DatabaseConfig,
    wait: Duration,
) -> Result<(tx::TxPool, PgPool), sqlx::Error> {
    let pool = connect_waiting(cfg, wait).await?;
    let session = session_pool(cfg, &pool)?;
    let lean = lean_pool_waiting(cfg, wait)?;
    Ok((tx::TxPool::new(pool, lean), session))
}

/// The pool for the API's reads behind a transaction pooler ([`lean`]: no ping on release,
/// so a job poll is one server transaction there, not two), at most as many connections as
/// the main pool. `None` without a pooler: there sqlx's statement cache keeps the main pool
/// the cheaper one, and its ping is a round trip that costs the server nothing.
pub fn lean_pool(cfg: &DatabaseConfig) -> Result<Option<lean::LeanPool>, sqlx::Error> {
    lean_pool_waiting(cfg, ACQUIRE_TIMEOUT)
}

/// [`lean_pool`] with a longer wait for a free connection, as [`connect_waiting`].
pub fn lean_pool_waiting(
    cfg: &DatabaseConfig,
    acquire_timeout: Duration,
) -> Result<Option<lean::LeanPool>, sqlx::Error> {
    if !cfg.pooled() {
        return Ok(None);
    }
    Ok(Some(lean::LeanPool::new(
        connect_options(cfg, &cfg.database_url)?,
        cfg.database_max_connections.max(2),
        acquire_timeout,
    )))
}

/// A pool on a read replica (`DATABASE_READ_URL`), set up as [`connect`] sets up the primary's
/// (behind a pooler when `DATABASE_URL` is one). It connects lazily, so a replica that is away
/// at start-up keeps no web process from serving off its primary, and it waits at most a
/// second for a connection: a read that cannot have one goes to the primary instead.
pub fn connect_replica(cfg: &DatabaseConfig, url: &str) -> Result<PgPool, sqlx::Error> {
    Ok(pool_options(cfg, Duration::from_secs(1)).connect_lazy_with(connect_options(cfg, url)?))
}

/// Connection settings for `url`. Behind a pooler no application name: server connections
/// are shared, and a name the reset (`RESET ALL`) clears is one more `SET` the pooler sends
/// before every transaction.
fn connect_options(cfg: &DatabaseConfig, url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(if cfg.pooled() {
        through_pooler(options)
    } else {
        options.application_name("timeline")
    })
}

fn pool_options(cfg: &DatabaseConfig, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(cfg.database_max_connections.max(2))
        .acquire_timeout(acquire_timeout)
        // A connection that sat idle is pinged before use, so one left from before a database
        // or pooler restart is replaced rather than failing its next request with a 503 (the
        // pooler test saw that without a ping). One in use a moment ago is alive: under load
        // the ping would be a round trip per acquire, and behind PgBouncer one more reset.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_WHEN_IDLE {
                    return Ok(true);
                }
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
}

/// A pool straight to PostgreSQL (`DATABASE_SESSION_URL` when set, else `DATABASE_URL`), for
/// the operator's commands: migrations take session advisory locks, and a one-off command has
/// no need of the pooler.
pub async fn connect_direct(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let url = cfg
        .database_session_url
        .as_ref()
        .unwrap_or(&cfg.database_url);
    connect(&DatabaseConfig::direct(
        url.clone(),
        cfg.database_max_connections,
    ))
    .await
}

/// A transaction-mode pooler hands each transaction whichever server connection is free, so
/// a statement prepared in one transaction is not there in the next. Without a cache sqlx
/// prepares each statement where it runs; the pooler's `server_reset_query_always` drops the
/// prepared statements when the transaction ends, so their names never collide (sqlx's
/// `persistent(false)` would do without it, but the queue library's queries keep the default).
/// Every statement with parameters must therefore run inside an explicit transaction: sqlx
/// parses and executes it in two round trips, which only a transaction keeps on one server
/// connection. `extra_float_digits` is not a startup parameter PgBouncer knows. sqlx asks for
/// `TimeZone=UTC` at startup: the pooler must open its server connections with the same
/// (`timezone=UTC` in its `[databases]` entry, as scripts/pgbouncer.sh does), or it sends a
/// `SET TimeZone` before every transaction, each one more transaction on the server.
fn through_pooler(options: PgConnectOptions) -> PgConnectOptions {
    options.statement_cache_capacity(0).extra_float_digits(None)
}

/// The pool for what needs a session of its own (`LISTEN`, session advisory locks): `main`
/// itself without a pooler; with one, at most 2 direct connections to `DATABASE_SESSION_URL`,
/// opened when first used.
pub fn session_pool(cfg: &DatabaseConfig, main: &PgPool) -> Result<PgPool, sqlx::Error> {
    let Some(url) = cfg.database_session_url.as_ref().filter(|_| cfg.pooled()) else {
        return Ok(main.clone());
    };
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(true)
        .connect_lazy_with(options.application_name("timeline-session")))
}

/// Whether `err` is a violation of the named unique constraint or index.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.is_unique_violation() && db.constraint() == Some(constraint))
}

/// How a database error should be treated by a step that hit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The data itself was refused (SQLSTATE 22xxx data exceptions, 23xxx integrity
    /// violations): the same statement will fail again, so retrying only delays the verdict.
    Permanent,
    /// The database was away or busy (connection loss 08xxx, serialization failure 40001,
    /// deadlock 40P01, shutdown 57xxx, too many connections 53xxx, pool timeouts, I/O): a later
    /// attempt may succeed. Anything unrecognised is treated as transient too, the cautious
    /// choice: it costs retries, never a wrongly failed file.
    Transient,
}

/// Classifies a database error by its SQLSTATE.
pub fn classify(err: &sqlx::Error) -> ErrorClass {
    match err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(code) if code.starts_with("22") || code.starts_with("23") => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        },
        // Decoding a column into a Rust type failed: the row holds what the code cannot read.
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
}
