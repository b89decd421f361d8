//! Where a transaction begins: sqlx's pool, or, behind a transaction pooler, the lean pool
//! ([`super::lean`]), whose connections go back without sqlx's release ping. Through
//! PgBouncer that ping is one more server transaction and one more reset per transaction, so
//! the API's requests, upload sessions and tus leases, and the workers' fetches,
//! acknowledgements and steps' transactions begin here.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Transaction};

use super::lean::{LeanConn, LeanPool, LeanTx};

/// Begins transactions on the lean pool when there is one (behind a pooler), else on `pool`.
#[derive(Debug, Clone)]
pub struct TxPool {
    pool: PgPool,
    lean: Option<LeanPool>,
}

impl TxPool {
    pub fn new(pool: PgPool, lean: Option<LeanPool>) -> Self {
        Self { pool, lean }
    }

    /// Whether transactions go through a transaction pooler (on the lean pool).
    pub fn pooled(&self) -> bool {
        self.lean.is_some()
    }

    /// sqlx's pool, for what runs outside an explicit transaction.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match &self.lean {
            Some(lean) => Tx::Lean(lean.begin().await?),
            None => Tx::Sqlx(self.pool.begin().await?),
        })
    }

    /// A connection for one statement outside an explicit transaction, sent as a simple query
    /// (one exchange, which a pooler keeps on one server connection; see
    /// [`LeanPool::alone`]). Hand it back with [`Conn::release`] once answered.
    pub async fn alone(&self) -> Result<Conn, sqlx::Error> {
        Ok(match &self.lean {
            Some(lean) => Conn::Lean(lean.alone().await?),
            None => Conn::Sqlx(self.pool.acquire().await?),
        })
    }
}

/// What a transaction can begin on: sqlx's pool (the operator's commands, the reconciler), or
/// a [`TxPool`] (the API's and the workers' own work, which go through the pooler if any).
pub trait Begin: Send + Sync {
    fn begin_tx(&self) -> impl Future<Output = Result<Tx, sqlx::Error>> + Send;
}

impl Begin for PgPool {
    async fn begin_tx(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx::Sqlx(self.begin().await?))
    }
}

impl Begin for TxPool {
    async fn begin_tx(&self) -> Result<Tx, sqlx::Error> {
        self.begin().await
    }
}

impl From<PgPool> for TxPool {
    fn from(pool: PgPool) -> Self {
        Self::new(pool, None)
    }
}

/// A transaction of either pool: sqlx's, or the lean one. Dropped without [`Tx::commit`], it is
/// rolled back.
#[derive(Debug)]
pub enum Tx {
    Sqlx(Transaction<'static, Postgres>),
    Lean(LeanTx),
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlx(tx) => tx.commit().await,
            Self::Lean(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlx(tx) => tx.rollback().await,
            Self::Lean(tx) => tx.rollback().await,
        }
    }
}

impl Deref for Tx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Self::Sqlx(tx) => tx,
            Self::Lean(tx) => tx,
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Self::Sqlx(tx) => tx,
            Self::Lean(tx) => tx,
        }
    }
}

/// A connection of either pool, outside a transaction ([`TxPool::alone`]).
#[derive(Debug)]
pub enum Conn {
    Sqlx(PoolConnection<Postgres>),
    Lean(LeanConn),
}

impl Conn {
    /// Hands the connection back to its pool. Dropped instead, sqlx's goes back after its
    /// ping and a lean one is closed.
    pub fn release(self) {
        match self {
            Self::Sqlx(conn) => drop(conn),
            Self::Lean(conn) => conn.release(),
        }
    }
}

impl Deref for Conn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Self::Sqlx(conn) => conn,
            Self::Lean(conn) => conn,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Self::Sqlx(conn) => conn,
            Self::Lean(conn) => conn,
        }
    }
}
