//! The API's read paths — the very functions `GET /v1/media` calls (`db::media::list`,
//! `db::media::detail`), run as the API runs them: inside `begin_as`, the API role with
//! row-level security — and the radius search.

use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{media, migrate, user};
use timeline::db::media::{Cursor, detail, list, within_radius};
use timeline::http::auth::begin_as;
use timeline::models::ProcessingStatus;

#[sqlx::test(migrations = false)]
async fn timeline_pages_newest_first_without_gaps_or_repeats(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "a@example.org").await,
        user(&pool, "b@example.org").await,
    );
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = media(&pool, a, &format!("{i}.jpg")).await;
        // Two photos share a taken_at: the id breaks the tie.
        sqlx::query("UPDATE media_files SET taken_at = '2024-01-01'::timestamptz + make_interval(days => $2) WHERE id = $1")
            .bind(id)
            .bind(i.min(5))
            .execute(&pool)
            .await
            .unwrap();
        ids.push(id);
    }
    media(&pool, b, "other.jpg").await;

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut tx = begin_as(&pool.clone().into(), a).await.unwrap();
        let page = list(&mut *tx, a, None, cursor, 3).await.unwrap();
        tx.commit().await.unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some(Cursor {
            timeline_at: last.timeline_at,
            id: last.id,
        });
        seen.extend(page.iter().map(|r| (r.timeline_at, r.id)));
    }
    assert_eq!(seen.len(), 7, "every row once, none of another user");
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest first, then id descending");

    // The status filter (`?status=failed`) and the detail view, under the same scoping: even a
    // query that forgot its user filter would see only user a's rows here.
    sqlx::query(
        "UPDATE media_files SET processing_status = 'failed', error_message = 'x' WHERE id = $1",
    )
    .bind(ids[2])
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = begin_as(&pool.clone().into(), a).await.unwrap();
    let failed = list(&mut *tx, a, Some(ProcessingStatus::Failed), None, 10)
        .await
        .unwrap();
    assert_eq!(
        failed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert!(detail(&mut *tx, a, ids[0]).await.unwrap().is_some());
    let other: Uuid = sqlx::query_scalar("SELECT id FROM media_files WHERE user_id = $1")
        .bind(b)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        detail(&mut *tx, a, other).await.unwrap().is_none(),
        "another user's media is not found"
    );
    // Row-level security, not only the WHERE clause: asked as user a for user b's rows.
    assert!(list(&mut *tx, b, None, None, 10).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn radius_search_finds_what_is_within_5_km(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "a@example.org").await,
        user(&pool, "b@example.org").await,
    );
    // Eiffel Tower; Notre-Dame (~4.1 km); Versailles (~14 km); the same spot for another user.
    let places = [
        (a, 48.8584, 2.2945),
        (a, 48.8530, 2.3499),
        (a, 48.8049, 2.1204),
        (b, 48.8584, 2.2945),
    ];
    let mut media_ids: Vec<Uuid> = Vec::new();
    for (owner, lat, lon) in places {
        let loc: Uuid = sqlx::query_scalar(
            "INSERT INTO locations (user_id, latitude, longitude) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(owner)
        .bind(lat)
        .bind(lon)
        .fetch_one(&pool)
        .await
        .unwrap();
        let m = media(&pool, owner, "p.jpg").await;
        sqlx::query("UPDATE media_files SET location_id = $1 WHERE id = $2")
            .bind(loc)
            .bind(m)
            .execute(&pool)
            .await
            .unwrap();
        media_ids.push(m);
    }
    let found = within_radius(&pool, a, 48.8584, 2.2945, 5000.0, 100)
        .await
        .unwrap();
    let ids: Vec<Uuid> = found.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![media_ids[0], media_ids[1]]);
    assert!(
        found[1].distance_m > 3500.0 && found[1].distance_m < 4500.0,
        "{}",
        found[1].distance_m
    );
}

/// Which of these hashes a user has: hashed originals, and files recorded but not yet through
/// their hash step by the hash taken as their bytes arrived (an import run again after its
/// worker died must know what the dead run stored), but not those that failed before it, and
/// never another user's.
#[sqlx::test(migrations = false)]
async fn existing_hashes_know_files_not_yet_hashed_but_not_failed_or_others(pool: PgPool) {
    migrate(&pool).await;
    let (u, other) = (
        user(&pool, "h@example.org").await,
        user(&pool, "o@example.org").await,
    );
    let h = |c: char| c.to_string().repeat(64);
    let set = |id: Uuid, file_hash: Option<String>, upload: String, status: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "UPDATE media_files SET file_hash = $2, upload_sha256 = $3,
                        processing_status = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(file_hash)
            .bind(upload)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let hashed = media(&pool, u, "a.jpg").await;
    set(hashed, Some(h('a')), h('a'), "completed").await;
    let in_flight = media(&pool, u, "b.jpg").await;
    set(in_flight, None, h('b'), "processing").await;
    let failed = media(&pool, u, "c.jpg").await;
    set(failed, None, h('c'), "failed").await;
    // The same bytes as `hashed`, sent again and not hashed yet: the hashed one stands.
    let again = media(&pool, u, "a2.jpg").await;
    set(again, None, h('a'), "pending").await;
    let theirs = media(&pool, other, "d.jpg").await;
    set(theirs, None, h('d'), "pending").await;

    let mut conn = pool.acquire().await.unwrap();
    let asked: Vec<String> = "abcde".chars().map(h).collect();
    let mut found = timeline::db::media::existing_hashes(&mut conn, u, &asked)
        .await
        .unwrap();
    found.sort();
    assert_eq!(found, vec![(h('a'), hashed), (h('b'), in_flight)]);
}
