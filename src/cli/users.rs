//! `timeline users ...`: account administration for operators.

use clap::Subcommand;

use super::{Error, write_line};
use crate::config::DatabaseConfig;
use crate::models::Email;
use crate::{auth, db};

/// `timeline users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and an API token; prints {"user_id": "...", "token": "..."}.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
}

pub(super) async fn run(cfg: &DatabaseConfig, command: UsersCommand) -> Result<(), Error> {
    match command {
        UsersCommand::Create { email, name } => {
            let email = Email::parse(&email).map_err(|e| Error::Invalid(e.to_string()))?;
            let pool = db::connect(cfg).await?;
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
            db::users::insert_api_token(&mut *tx, user_id, &auth::hash_token(&token), "cli")
                .await?;
            tx.commit().await?;
            tracing::info!(user.id = %user_id, "user created");
            let line = serde_json::json!({ "user_id": user_id, "token": token });
            write_line(&line.to_string())
        }
    }
}
