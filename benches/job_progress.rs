//! Job progress is O(1) per finished file: the database time of a file's end-state
//! transaction (its status, then `db::jobs::file_ended`) in a 20,000-file job against a
//! 10-file one. Goal: flat within 20 %.
//!
//! `cargo bench --bench job_progress` (database `timeline_bench_progress` on the server of
//! `DATABASE_URL`, rebuilt each run). Each measured iteration ends one file of the job and
//! commits; between iterations (unmeasured) the file is put back, so the job never completes
//! and always has the same size.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sqlx::PgPool;
use uuid::Uuid;

async fn setup() -> PgPool {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| timeline::config::DEFAULT_DATABASE_URL.into());
    let (server, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    let admin = PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    sqlx::raw_sql("DROP DATABASE IF EXISTS timeline_bench_progress WITH (FORCE)")
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("drop: {e}"));
    sqlx::raw_sql("CREATE DATABASE timeline_bench_progress")
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let pool = PgPool::connect(&format!("{server}/timeline_bench_progress"))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    timeline::db::migrate::run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    pool
}

/// A running job of `n` pending files (rows only: nothing is stored or queued).
async fn job(pool: &PgPool, n: usize) -> (Uuid, Vec<Uuid>) {
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email) VALUES ('bench' || gen_random_uuid() || '@example.org') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("user: {e}"));
    let media: Vec<timeline::db::uploads::NewMedia> = (0..n)
        .map(|i| timeline::db::uploads::NewMedia {
            id: Uuid::new_v4(),
            user_id: user,
            filename: format!("IMG_{i}.jpg"),
            file_path: format!("media/{user}/{i}"),
            file_size: 1,
            mime_type: "image/jpeg",
            sha256: None,
        })
        .collect();
    let ids: Vec<Uuid> = media.iter().map(|m| m.id).collect();
    let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    timeline::db::uploads::insert_media(&mut tx, &media)
        .await
        .unwrap_or_else(|e| panic!("media: {e}"));
    let job = timeline::db::jobs::create(
        &mut tx,
        user,
        timeline::models::JobType::MediaIngest,
        serde_json::json!({}),
        &ids,
    )
    .await
    .unwrap_or_else(|e| panic!("job: {e}"))
    .id;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::raw_sql("ANALYZE")
        .execute(pool)
        .await
        .unwrap_or_default();
    (job, ids)
}

/// The measured part: what a step's final transaction does for the job when a file ends.
async fn end_file(pool: &PgPool, id: Uuid) {
    let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("UPDATE media_files SET processing_status = 'completed' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    timeline::db::jobs::file_ended(&mut tx, id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Unmeasured: puts the file back so the job keeps its size and stays running.
async fn reset_file(pool: &PgPool, job: Uuid, id: Uuid) {
    for sql in [
        "UPDATE media_files SET processing_status = 'processing' WHERE id = $1",
        "UPDATE data_processing_job_media SET counted_status = NULL WHERE media_file_id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    sqlx::query(
        "UPDATE data_processing_jobs SET completed_count = completed_count - 1, status = 'running',
                completed_at = NULL WHERE id = $1",
    )
    .bind(job)
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let pool = rt.block_on(setup());
    let mut group = c.benchmark_group("end of one file");
    for n in [10usize, 20_000] {
        let (job, ids) = rt.block_on(job(&pool, n));
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::new("job of", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let id = ids[next % ids.len()];
                        next += 7919; // spread over the job, not one hot row
                        let t = Instant::now();
                        end_file(&pool, id).await;
                        took += t.elapsed();
                        reset_file(&pool, job, id).await;
                    }
                    took
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = progress;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(8));
    targets = benches
}
criterion_main!(progress);
