//! A small pool of connections to a transaction pooler, handed back without sqlx's release
//! ping: every pooled transaction begins here ([`super::tx`]), and the job poll's one
//! statement runs here ([`LeanPool::alone`]).
//!
//! Why our own: sqlx's pool pings every connection it takes back (a lone `Sync`, no option to
//! skip it in sqlx 0.9). Through PgBouncer 1.18 in transaction mode that `Sync` takes a server
//! connection of its own and ends in a second reset: per job poll, two server
//! transactions and two resets where one does the work (docs/SCALING.md). The workers'
//! fetches, acknowledgements and steps' transactions take theirs here too ([`super::tx`]).
//! The ping's other use is to catch a connection left mid-protocol by a cancelled request;
//! here a connection goes back through [`LeanTx::commit`] or [`LeanTx::rollback`] after the
//! pooler has answered, or, dropped on any other path, after a `ROLLBACK` that a task sends
//! in the background (sqlx reads whatever a cancelled statement left unread before it sends
//! the next one, so the connection comes back in step; one whose rollback fails is closed).
//!
//! A connection idle for [`super::PING_WHEN_IDLE`] or more is pinged before use, as the main
//! pool does, so one left from before a pooler restart is replaced rather than failing a
//! request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx_core::transaction::TransactionManager as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool of at most `max` connections, made as they are first needed.
#[derive(Clone)]
pub struct LeanPool(Arc<Inner>);

struct Inner {
    options: PgConnectOptions,
    /// Most recently used last: the busy connections stay warm, the rest age out.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl LeanPool {
    pub fn new(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        Self(Arc::new(Inner {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            acquire_timeout,
        }))
    }

    /// A connection with a transaction begun on it. Waits at most the acquire timeout for a
    /// free connection and for it to answer (then `PoolTimedOut`, which the API answers with
    /// 503), as sqlx's pool does: a pooler cut off the network must not hang a request.
    pub async fn begin(&self) -> Result<LeanTx, sqlx::Error> {
        let mut held = self.take().await?;
        Manager::begin(&mut held.conn, None).await?;
        Ok(LeanTx(Some(held)))
    }

    /// A connection for one statement outside an explicit transaction: a simple query, which
    /// the pooler runs on one server connection in one exchange (an extended-protocol
    /// statement outside a transaction may be parsed on one server connection and run on
    /// another). See [`LeanConn`] for how it goes back.
    pub async fn alone(&self) -> Result<LeanConn, sqlx::Error> {
        Ok(LeanConn(self.take().await?))
    }

    /// A slot and a connection, within the acquire timeout.
    async fn take(&self) -> Result<Held, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.0.acquire_timeout;
        let timed_out = |_| sqlx::Error::PoolTimedOut;
        let permit = tokio::time::timeout_at(deadline, self.0.permits.clone().acquire_owned())
            .await
            .map_err(timed_out)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let conn = tokio::time::timeout_at(deadline, self.connection())
            .await
            .map_err(timed_out)??;
        Ok(Held {
            conn,
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// The most recently used idle connection that answers, else a new one.
    async fn connection(&self) -> Result<PgConnection, sqlx::Error> {
        while let Some((mut conn, since)) = self.pop_idle() {
            if since.elapsed() < super::PING_WHEN_IDLE || conn.ping().await.is_ok() {
                return Ok(conn);
            }
        }
        PgConnection::connect_with(&self.0.options).await
    }

    fn pop_idle(&self) -> Option<(PgConnection, Instant)> {
        self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, conn: PgConnection) {
        self.0
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((conn, Instant::now()));
    }

    /// Idle connections now.
    fn idle_count(&self) -> usize {
        self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl std::fmt::Debug for LeanPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanPool")
            .field("idle", &self.idle_count())
            .field("free", &self.0.permits.available_permits())
            .finish()
    }
}

/// sqlx's transaction manager, so that sqlx counts the transaction: a savepoint begun inside
/// (`Acquire::begin` on the connection) is then a savepoint, not a second `BEGIN` whose
/// `COMMIT` would end ours.
type Manager = <sqlx::Postgres as sqlx::Database>::TransactionManager;

/// How a [`LeanTx`] ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Commit,
    Rollback,
}

/// A transaction on a connection of a [`LeanPool`]. Dropped without [`LeanTx::commit`] or
/// [`LeanTx::rollback`] (an error, a cancelled request), it is rolled back in the background
/// and its connection given back then; its slot in the pool stays taken until that is done.
pub struct LeanTx(Option<Held>);

/// What a [`LeanTx`] holds until it ends.
struct Held {
    conn: PgConnection,
    pool: LeanPool,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for LeanTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanTx").finish_non_exhaustive()
    }
}

impl LeanTx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        Self::end(self.0.take(), End::Commit).await
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        Self::end(self.0.take(), End::Rollback).await
    }

    /// Ends the transaction and hands the connection back; the permit goes with `held`,
    /// after the connection is idle again. A connection whose statement failed is dropped
    /// (closed): the server ends its transaction.
    async fn end(held: Option<Held>, end: End) -> Result<(), sqlx::Error> {
        let Some(Held { mut conn, pool, .. }) = held else {
            return Ok(());
        };
        match end {
            End::Commit => Manager::commit(&mut conn).await?,
            End::Rollback => Manager::rollback(&mut conn).await?,
        }
        // Still inside only if a savepoint's `Transaction` was leaked: then closed, not reused.
        if Manager::get_transaction_depth(&conn) == 0 {
            pool.give_back(conn);
        }
        Ok(())
    }
}

impl std::ops::Deref for LeanTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.0 {
            Some(held) => &held.conn,
            None => unreachable!("a LeanTx is only emptied as it is consumed"),
        }
    }
}

impl std::ops::DerefMut for LeanTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.0 {
            Some(held) => &mut held.conn,
            None => unreachable!("a LeanTx is only emptied as it is consumed"),
        }
    }
}

impl Drop for LeanTx {
    fn drop(&mut self) {
        let Some(held) = self.0.take() else { return };
        // Outside a runtime (a process shutting down) the connection closes with `held`.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(Self::end(Some(held), End::Rollback));
        }
    }
}

/// A connection of a [`LeanPool`] for statements outside a transaction. It goes back to the
/// pool only through [`LeanConn::release`], once its statements have been answered; dropped
/// (an error, a cancelled request), it is closed, since it may be mid-exchange.
pub struct LeanConn(Held);

impl LeanConn {
    /// Hands the connection back for reuse.
    pub fn release(self) {
        let Held { conn, pool, .. } = self.0;
        pool.give_back(conn);
    }
}

impl std::fmt::Debug for LeanConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanConn").finish_non_exhaustive()
    }
}

impl std::ops::Deref for LeanConn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for LeanConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0.conn
    }
}
