//! Helpers shared by the test modules.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Applies ours and the queue's migrations, exactly as `timeline migrate` does.
pub async fn migrate(pool: &PgPool) {
    timeline::db::migrate::run(pool)
        .await
        .expect("migrations apply");
}

/// Inserts a user with the given email and returns its id.
pub async fn user(pool: &PgPool, email: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
        .bind(email)
        .fetch_one(pool)
        .await
        .expect("insert user")
}

/// Inserts a media file row for `user_id`.
pub async fn media(pool: &PgPool, user_id: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO media_files (user_id, filename, file_path, file_size, mime_type)
         VALUES ($1, $2, 'originals/' || gen_random_uuid(), 10, 'image/jpeg') RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .fetch_one(pool)
    .await
    .expect("insert media")
}

/// Inserts a memory dated a year ago.
pub async fn memory(pool: &PgPool, user_id: Uuid, title: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO memories (user_id, title, memory_date) VALUES ($1, $2, now() - interval '1 year') RETURNING id",
    )
    .bind(user_id)
    .bind(title)
    .fetch_one(pool)
    .await
    .expect("insert memory")
}

/// Makes the connection's current transaction act as the API does for `user_id`.
pub async fn act_as_api(conn: &mut PgConnection, user_id: Uuid) {
    sqlx::query("SET LOCAL ROLE timeline_api")
        .execute(&mut *conn)
        .await
        .expect("set role");
    sqlx::query("SELECT set_config('app.user_id', $1, true)")
        .bind(user_id.to_string())
        .execute(&mut *conn)
        .await
        .expect("set user");
}

/// The SQLSTATE of a failed statement, for asserting which rule refused it.
pub fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// Runs a statement that must be refused by a constraint; returns the constraint's SQLSTATE.
pub async fn refused(pool: &PgPool, sql: &str) -> String {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
    {
        Ok(_) => panic!("accepted: {sql}"),
        Err(e) => sqlstate(&e).unwrap_or_else(|| panic!("not a database error: {e}")),
    }
}

/// SQLSTATEs: 23505 unique, 23514 check, 23503 foreign key, 42501 insufficient privilege.
pub const UNIQUE: &str = "23505";
pub const CHECK: &str = "23514";
