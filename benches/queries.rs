//! The API's hot queries at scale: 1,000,000 `media_files` rows for 1,000 users.
//!
//! `cargo bench --bench queries` loads the data once into database `timeline_bench` on the
//! server of `DATABASE_URL` (default: the local one), then for each query prints p50/p95/p99
//! over 1,000 runs with random users and positions, its EXPLAIN (ANALYZE, BUFFERS), and runs
//! the criterion measurement. Targets: timeline page p95 < 5 ms, lookup by hash < 1 ms,
//! 5 km radius < 50 ms.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use sqlx::PgPool;
use timeline::db::media::{Cursor, find_by_hash, list, within_radius};
use uuid::Uuid;

const USERS: i64 = 1_000;
const MEDIA: i64 = 1_000_000;

/// Bulk load in SQL: users clustered around a home city each (so radius queries find
/// neighbours), 300 places per user, media spread over 10 years, 80 % with a place.
const LOAD: &str = r#"
SET session_replication_role = replica; -- bulk path: skip audit triggers
INSERT INTO users (id, email)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid, 'bench' || u || '@example.org'
FROM generate_series(1, 1000) u;
INSERT INTO locations (user_id, latitude, longitude, city)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid,
       -60 + (u * 7919 % 12000) / 100.0 + (random() - 0.5) * 0.4,
       -170 + (u * 104729 % 34000) / 100.0 + (random() - 0.5) * 0.6,
       'city' || u
FROM generate_series(1, 1000) u, generate_series(1, 300) p;
CREATE TEMP TABLE locs AS
SELECT id, user_id, (row_number() OVER (PARTITION BY user_id ORDER BY id) - 1)::int AS n FROM locations;
CREATE INDEX ON locs (user_id, n);
INSERT INTO media_files (user_id, filename, file_path, file_size, mime_type, file_hash, processing_status,
                         taken_at, location_id, width, height)
SELECT uid, 'IMG_' || i || '.jpg', 'media/' || uid || '/' || i, 3000000 + i % 1000, 'image/jpeg',
       encode(sha256(int8send(i)), 'hex'), 'completed',
       now() - make_interval(secs => (random() * 10 * 365 * 86400)::int),
       CASE WHEN random() < 0.8 THEN (SELECT id FROM locs WHERE locs.user_id = uid AND locs.n = i % 300) END,
       4032, 3024
FROM (SELECT i, ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 1000), 12, '0'))::uuid AS uid
      FROM generate_series(1, 1000000) i) s;
SET session_replication_role = DEFAULT;
ANALYZE;
"#;

fn user(n: i64) -> Uuid {
    format!("00000000-0000-4000-8000-{n:012x}")
        .parse()
        .unwrap_or_default()
}

async fn setup() -> PgPool {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| timeline::config::DEFAULT_DATABASE_URL.into());
    let (server, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    let url = format!("{server}/timeline_bench");
    timeline::db::migrate::create_database_if_missing(&url)
        .await
        .unwrap_or_default();
    let pool = PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    timeline::db::migrate::run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    if n < MEDIA {
        eprintln!("loading {MEDIA} media rows for {USERS} users (once)...");
        let t = Instant::now();
        sqlx::raw_sql("TRUNCATE users CASCADE")
            .execute(&pool)
            .await
            .unwrap_or_default();
        sqlx::raw_sql(LOAD)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("load: {e}"));
        eprintln!("loaded in {:.0}s", t.elapsed().as_secs_f64());
    }
    pool
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    format!(
        "p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms (n={})",
        p(0.5),
        p(0.95),
        p(0.99),
        v.len()
    )
}

async fn random_cursor(pool: &PgPool, rng: &mut StdRng) -> (Uuid, Option<Cursor>) {
    let u = user(rng.random_range(1..=USERS));
    let days = rng.random_range(0..3650);
    let at = chrono::Utc::now() - chrono::Duration::days(days);
    let _ = pool;
    (
        u,
        Some(Cursor {
            timeline_at: at,
            id: Uuid::max(),
        }),
    )
}

async fn sample_hashes(pool: &PgPool) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT user_id, file_hash FROM media_files TABLESAMPLE SYSTEM (0.1) LIMIT 1000")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

async fn sample_points(pool: &PgPool) -> Vec<(Uuid, f64, f64)> {
    sqlx::query_as(
        "SELECT user_id, latitude, longitude FROM locations TABLESAMPLE SYSTEM (1) LIMIT 1000",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}

async fn explain(pool: &PgPool, title: &str, sql: &str) {
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    eprintln!("--- EXPLAIN {title}\n{}", plan.join("\n"));
}

async fn report(pool: &PgPool) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = Vec::new();
    for _ in 0..1000 {
        let (u, c) = random_cursor(pool, &mut rng).await;
        let s = Instant::now();
        // The API's own timeline query (`GET /v1/media`).
        let rows = list(pool, u, None, c, 50).await.unwrap_or_default();
        t.push(s.elapsed());
        std::hint::black_box(rows);
    }
    eprintln!("timeline page (50 rows by cursor): {}", percentiles(t));
    let hashes = sample_hashes(pool).await;
    let mut t = Vec::new();
    for (u, h) in &hashes {
        let s = Instant::now();
        let found = find_by_hash(pool, *u, h).await.unwrap_or_default();
        t.push(s.elapsed());
        assert!(found.is_some());
    }
    eprintln!("lookup by hash: {}", percentiles(t));
    let points = sample_points(pool).await;
    let mut t = Vec::new();
    let mut hits = 0;
    for (u, lat, lon) in &points {
        let s = Instant::now();
        hits += within_radius(pool, *u, *lat, *lon, 5000.0, 1000)
            .await
            .unwrap_or_default()
            .len();
        t.push(s.elapsed());
    }
    eprintln!(
        "5 km radius: {} ({:.1} media per query)",
        percentiles(t),
        hits as f64 / points.len().max(1) as f64
    );
    let u = user(500);
    explain(pool, "timeline page", &format!(
        "SELECT id FROM media_files WHERE user_id = '{u}' AND (timeline_at, id) < (now() - interval '3 years', 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid) ORDER BY timeline_at DESC, id DESC LIMIT 50")).await;
    if let Some((u, h)) = hashes.first() {
        explain(pool, "lookup by hash", &format!("SELECT id FROM media_files WHERE user_id = '{u}' AND file_hash = '{h}' AND duplicate_of IS NULL")).await;
    }
    if let Some((u, lat, lon)) = points.first() {
        explain(pool, "5 km radius", &format!(
            "SELECT m.id FROM locations l JOIN media_files m ON m.location_id = l.id WHERE l.user_id = '{u}' \
             AND earth_box(ll_to_earth({lat}, {lon}), 5000) @> ll_to_earth(l.latitude, l.longitude) \
             AND earth_distance(ll_to_earth({lat}, {lon}), ll_to_earth(l.latitude, l.longitude)) <= 5000")).await;
    }
}

fn queries(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let pool = rt.block_on(setup());
    rt.block_on(report(&pool));
    let mut rng = StdRng::seed_from_u64(11);
    let hashes = rt.block_on(sample_hashes(&pool));
    let points = rt.block_on(sample_points(&pool));
    c.bench_function("timeline_page_50", |b| {
        b.to_async(&rt).iter(|| {
            let u = user(rng.random_range(1..=USERS));
            let at = chrono::Utc::now() - chrono::Duration::days(rng.next_u32() as i64 % 3650);
            let pool = pool.clone();
            async move {
                list(
                    &pool,
                    u,
                    None,
                    Some(Cursor {
                        timeline_at: at,
                        id: Uuid::max(),
                    }),
                    50,
                )
                .await
            }
        });
    });
    let mut i = 0;
    c.bench_function("lookup_by_hash", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            let (u, h) = hashes[i % hashes.len()].clone();
            let pool = pool.clone();
            async move { find_by_hash(&pool, u, &h).await }
        });
    });
    c.bench_function("radius_5km", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            let (u, lat, lon) = points[i % points.len()];
            let pool = pool.clone();
            async move { within_radius(&pool, u, lat, lon, 5000.0, 1000).await }
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(Duration::from_secs(5));
    targets = queries
}
criterion_main!(benches);
