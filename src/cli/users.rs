//! `timeline users ...`: account administration for operators.

use clap::Subcommand;

use super::{Error, write_line};
use crate::config::DatabaseConfig;
use crate::models::Email;
use crate::{auth, db};

/// Default lifetime of a new API token, in days (`--expires-in-days`, `TIMELINE_TOKEN_DAYS`).
pub const DEFAULT_TOKEN_DAYS: u32 = 365;

/// `timeline users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and an API token; prints {"user_id": "...", "token": "...", ...}.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// An operator: may open the jobs dashboard (`/admin`).
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        expiry: Expiry,
    },
    /// Manage a user's API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Erase a user: every row and stored object of theirs, their tokens included (the right to
    /// erasure). Runs the erasure job to its end and prints its counts as JSON.
    Erase {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        storage: crate::config::StorageConfig,
    },
}

/// `timeline users token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue another token for a user (a second device, a rotation); prints it once.
    Create {
        #[arg(long)]
        email: String,
        /// A label for the operator's own records.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        expiry: Expiry,
    },
    /// List a user's tokens (never their value): one JSON line each.
    List {
        #[arg(long)]
        email: String,
    },
    /// Revoke a token by id: refused from the next request on.
    Revoke {
        #[arg(long)]
        id: uuid::Uuid,
    },
}

/// How long a new token lives.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Expiry {
    /// Days until the token expires (0: never).
    #[arg(long = "expires-in-days", env = "TIMELINE_TOKEN_DAYS", default_value_t = DEFAULT_TOKEN_DAYS)]
    pub days: u32,
}

impl Expiry {
    fn at(self) -> Option<chrono::DateTime<chrono::Utc>> {
        (self.days > 0).then(|| chrono::Utc::now() + chrono::Duration::days(i64::from(self.days)))
    }
}

pub(super) async fn run(cfg: &DatabaseConfig, command: UsersCommand) -> Result<(), Error> {
    match command {
        UsersCommand::Create {
            email,
            name,
            admin,
            expiry,
        } => {
            let email = Email::parse(&email).map_err(|e| Error::Invalid(e.to_string()))?;
            let pool = db::connect_direct(cfg).await?;
            let token = auth::generate_token();
            let mut tx = pool.begin().await?;
            let user_id = match db::users::create_user(&mut *tx, &email, name.as_deref()).await {
                Ok(id) => id,
                Err(e) if db::is_unique_violation(&e, "idx_users_email") => {
                    return Err(Error::Invalid(format!(
                        "a user with email {email} already exists"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if admin {
                db::users::set_admin(&mut *tx, user_id, true).await?;
            }
            let expires_at = expiry.at();
            let token_id = db::users::insert_api_token(
                &mut *tx,
                user_id,
                &auth::hash_token(&token),
                "cli",
                expires_at,
            )
            .await?;
            tx.commit().await?;
            tracing::info!(user.id = %user_id, "user created");
            let line = serde_json::json!({ "user_id": user_id, "token": token,
                                           "token_id": token_id, "expires_at": expires_at });
            write_line(&line.to_string())
        }
        UsersCommand::Token { command } => token(cfg, command).await,
        UsersCommand::Erase { email, storage } => erase(cfg, &email, &storage).await,
    }
}

/// Records the erasure (or joins one under way) and runs it here, to its end.
async fn erase(
    cfg: &DatabaseConfig,
    email: &str,
    storage: &crate::config::StorageConfig,
) -> Result<(), Error> {
    let storage = storage.open().map_err(|e| Error::Invalid(e.to_string()))?;
    let pool = db::connect_direct(cfg).await?;
    let user = db::users::find_id_by_email(&pool, email)
        .await?
        .ok_or_else(|| Error::Invalid(format!("no user with email {email}")))?;
    let mut tx = pool.begin().await?;
    let job = crate::erasure::request(&mut tx, user)
        .await?
        .ok_or_else(|| Error::Invalid(format!("no user with email {email}")))?;
    tx.commit().await?;
    let report = crate::erasure::run(&pool, &storage, job)
        .await
        .map_err(|e| {
            Error::Invalid(format!("the erasure stopped ({e}); run it again to finish"))
        })?;
    write_line(&serde_json::to_string(&report).map_err(|e| Error::Invalid(e.to_string()))?)
}

async fn token(cfg: &DatabaseConfig, command: TokenCommand) -> Result<(), Error> {
    let pool = db::connect_direct(cfg).await?;
    let user_of = |email: String| {
        let pool = pool.clone();
        async move {
            db::users::find_id_by_email(&pool, &email)
                .await?
                .ok_or_else(|| Error::Invalid(format!("no user with email {email}")))
        }
    };
    match command {
        TokenCommand::Create {
            email,
            name,
            expiry,
        } => {
            let user_id = user_of(email).await?;
            let token = auth::generate_token();
            let expires_at = expiry.at();
            let token_id = db::users::insert_api_token(
                &pool,
                user_id,
                &auth::hash_token(&token),
                &name,
                expires_at,
            )
            .await?;
            tracing::info!(user.id = %user_id, token.id = %token_id, "token issued");
            let line = serde_json::json!({ "user_id": user_id, "token": token,
                                           "token_id": token_id, "expires_at": expires_at });
            write_line(&line.to_string())
        }
        TokenCommand::List { email } => {
            let user_id = user_of(email).await?;
            for t in db::users::list_tokens(&pool, user_id).await? {
                let line = serde_json::to_string(&t).map_err(|e| Error::Invalid(e.to_string()))?;
                write_line(&line)?;
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            if !db::users::revoke_token(&pool, id).await? {
                return Err(Error::Invalid(format!("no unrevoked token with id {id}")));
            }
            tracing::info!(token.id = %id, "token revoked");
            write_line(&serde_json::json!({ "revoked": id }).to_string())
        }
    }
}
