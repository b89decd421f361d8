//! The database refuses bad rows by itself, whatever code wrote them.

use sqlx::PgPool;

use crate::common::{CHECK, UNIQUE, media, memory, migrate, refused, user};

#[sqlx::test(migrations = false)]
async fn refuses_what_the_model_forbids(pool: PgPool) {
    migrate(&pool).await;
    let u = user(&pool, "ann@example.org").await;

    assert_eq!(
        refused(
            &pool,
            "INSERT INTO users (email) VALUES ('ANN@Example.org')"
        )
        .await,
        UNIQUE
    );
    assert_eq!(
        refused(&pool, "INSERT INTO users (email) VALUES ('not-an-email')").await,
        CHECK
    );
    assert_eq!(
        refused(&pool, "INSERT INTO users (email) VALUES ('a b@x.org')").await,
        CHECK
    );

    let loc = |lat: &str, lon: &str| {
        format!("INSERT INTO locations (user_id, latitude, longitude) VALUES ('{u}', {lat}, {lon})")
    };
    assert_eq!(refused(&pool, &loc("91", "0")).await, CHECK);
    assert_eq!(refused(&pool, &loc("-90.5", "0")).await, CHECK);
    assert_eq!(refused(&pool, &loc("0", "181")).await, CHECK);
    sqlx::raw_sql(sqlx::AssertSqlSafe(loc("90", "-180")))
        .execute(&pool)
        .await
        .expect("edges are valid");

    let mem = |date: &str, vis: &str| {
        format!(
            "INSERT INTO memories (user_id, title, memory_date, visibility) VALUES ('{u}', 't', {date}, '{vis}')"
        )
    };
    assert_eq!(
        refused(&pool, &mem("now() + interval '1 day'", "private")).await,
        CHECK
    );
    assert_eq!(
        refused(&pool, &mem("now() - interval '1 day'", "bogus")).await,
        CHECK
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(mem(
        "now() - interval '1 day'",
        "friends",
    )))
    .execute(&pool)
    .await
    .expect("valid memory");

    let job = |status: &str, progress: i32| {
        format!(
            "INSERT INTO data_processing_jobs (user_id, job_type, status, progress) VALUES ('{u}', 'media_ingest', '{status}', {progress})"
        )
    };
    assert_eq!(refused(&pool, &job("running", 101)).await, CHECK);
    assert_eq!(refused(&pool, &job("running", -1)).await, CHECK);
    assert_eq!(refused(&pool, &job("bogus", 0)).await, CHECK);
    // A finished job must say when it finished.
    assert_eq!(refused(&pool, &job("completed", 100)).await, CHECK);

    let m = memory(&pool, u, "m").await;
    let p: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO persons (created_by_user_id, first_name) VALUES ($1, 'P') RETURNING id",
    )
    .bind(u)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        refused(&pool, &format!("INSERT INTO memory_persons (memory_id, person_id, user_id, confidence) VALUES ('{m}', '{p}', '{u}', 1.5)")).await,
        CHECK
    );
    assert_eq!(
        refused(&pool, &format!("INSERT INTO user_persons (user_id, person_id, relationship_type) VALUES ('{u}', '{p}', 'nemesis')")).await,
        CHECK
    );
    assert_eq!(
        refused(&pool, &format!("INSERT INTO media_files (user_id, filename, file_path, file_size, mime_type) VALUES ('{u}', 'a', 'k', -1, 'image/jpeg')")).await,
        CHECK
    );
    assert_eq!(
        refused(&pool, &format!("INSERT INTO media_files (user_id, filename, file_path, file_size, mime_type, processing_status) VALUES ('{u}', 'a', 'k', 1, 'image/jpeg', 'bogus')")).await,
        CHECK
    );
}

#[sqlx::test(migrations = false)]
async fn one_original_per_user_and_hash(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "a@example.org").await,
        user(&pool, "b@example.org").await,
    );
    let hash = "ab".repeat(32);
    let set_hash =
        |id: uuid::Uuid| format!("UPDATE media_files SET file_hash = '{hash}' WHERE id = '{id}'");
    let first = media(&pool, a, "1.jpg").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(set_hash(first)))
        .execute(&pool)
        .await
        .unwrap();
    let second = media(&pool, a, "2.jpg").await;
    assert_eq!(refused(&pool, &set_hash(second)).await, UNIQUE);
    // Another user may own the same bytes.
    let other = media(&pool, b, "1.jpg").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(set_hash(other)))
        .execute(&pool)
        .await
        .unwrap();
    // A recorded duplicate keeps its hash and points at the original.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE media_files SET file_hash = '{hash}', processing_status = 'duplicate', duplicate_of = '{first}' WHERE id = '{second}'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    // A duplicate must say of what, and only a duplicate may.
    assert_eq!(
        refused(
            &pool,
            &format!("UPDATE media_files SET duplicate_of = NULL WHERE id = '{second}'")
        )
        .await,
        CHECK
    );
    let found = timeline::db::media::find_by_hash(&pool, a, &hash)
        .await
        .unwrap();
    assert_eq!(found, Some(first));
}

#[sqlx::test(migrations = false)]
async fn enum_values_match_check_constraints(pool: PgPool) {
    use timeline::models::{JobStatus, MemoryType, Visibility};
    migrate(&pool).await;
    let u = user(&pool, "e@example.org").await;
    for v in Visibility::ALL {
        for t in MemoryType::ALL {
            sqlx::query("INSERT INTO memories (user_id, title, memory_date, visibility, memory_type) VALUES ($1, 't', now(), $2, $3)")
                .bind(u)
                .bind(v)
                .bind(t)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{v}/{t}: {e}"));
        }
    }
    for s in JobStatus::ALL {
        sqlx::query("INSERT INTO data_processing_jobs (user_id, job_type, status, started_at, completed_at) VALUES ($1, 'media_ingest', $2, now(), now())")
            .bind(u)
            .bind(s)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[sqlx::test(migrations = false)]
async fn updated_at_moves_on_update(pool: PgPool) {
    migrate(&pool).await;
    let u = user(&pool, "t@example.org").await;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM users WHERE id = $1")
            .bind(u)
            .fetch_one(&pool)
            .await
            .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let after: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("UPDATE users SET bio = 'x' WHERE id = $1 RETURNING updated_at")
            .bind(u)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(after > before, "{after} > {before}");
}

#[sqlx::test(migrations = false)]
async fn deleting_a_user_deletes_everything_they_own(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "gone@example.org").await,
        user(&pool, "stays@example.org").await,
    );
    let m = memory(&pool, a, "m").await;
    let f = media(&pool, a, "f.jpg").await;
    sqlx::query(
        "INSERT INTO memory_media_files (memory_id, media_file_id, user_id) VALUES ($1, $2, $3)",
    )
    .bind(m)
    .bind(f)
    .bind(a)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO locations (user_id, latitude, longitude) VALUES ($1, 1, 2)")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    // Bob's person record of Ann (linked to her account) survives, unlinked.
    let p: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO persons (created_by_user_id, first_name, user_id, is_user) VALUES ($1, 'Ann', $2, true) RETURNING id",
    )
    .bind(b).bind(a)
    .fetch_one(&pool).await.unwrap();
    let kept = media(&pool, b, "keep.jpg").await;

    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();

    for table in ["memories", "media_files", "memory_media_files", "locations"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE user_id = $1"
        )))
        .bind(a)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} rows of the deleted user remain");
    }
    let (linked, is_user): (Option<uuid::Uuid>, bool) =
        sqlx::query_as("SELECT user_id, is_user FROM persons WHERE id = $1")
            .bind(p)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((linked, is_user), (None, false));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files WHERE id = $1")
        .bind(kept)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "other users' rows are untouched");
}

#[sqlx::test(migrations = false)]
async fn rows_cannot_point_at_another_users_data(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "a@example.org").await,
        user(&pool, "b@example.org").await,
    );
    let m = memory(&pool, a, "mine").await;
    let theirs = media(&pool, b, "theirs.jpg").await;
    let err = sqlx::query(
        "INSERT INTO memory_media_files (memory_id, media_file_id, user_id) VALUES ($1, $2, $3)",
    )
    .bind(m)
    .bind(theirs)
    .bind(a)
    .execute(&pool)
    .await
    .unwrap_err();
    assert_eq!(crate::common::sqlstate(&err).as_deref(), Some("23503"));
}
