//! The enqueue shares the upload's transaction: rolled back, neither row nor job remains.

use sqlx::PgPool;
use uuid::Uuid;

use timeline::db::uploads::NewMedia;

#[sqlx::test(migrations = false)]
async fn a_rolled_back_upload_leaves_neither_row_nor_job(pool: PgPool) {
    timeline::db::migrate::run(&pool).await.unwrap();
    let email = timeline::models::Email::parse("tx@example.org").unwrap();
    let user = timeline::db::users::create_user(&pool, &email, None)
        .await
        .unwrap();
    let media = NewMedia {
        id: Uuid::new_v4(),
        user_id: user,
        filename: "a.jpg".into(),
        file_path: "media/x/original".into(),
        file_size: 1,
        mime_type: "image/jpeg",
        sha256: None,
    };
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    let mut tx = pool.begin().await.unwrap();
    let job = timeline::ingest::submit(
        &mut tx,
        user,
        std::slice::from_ref(&media),
        timeline::jobs::Lane::Interactive,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count("SELECT count(*) FROM media_files").await, 0);
    assert_eq!(count("SELECT count(*) FROM data_processing_jobs").await, 0);
    assert_eq!(count("SELECT count(*) FROM apalis.jobs").await, 0);

    // Committed, all three exist, and the queue task names this media file and job.
    let mut tx = pool.begin().await.unwrap();
    let job2 = timeline::ingest::submit(
        &mut tx,
        user,
        std::slice::from_ref(&media),
        timeline::jobs::Lane::Interactive,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(job.id, job2.id);
    assert_eq!(count("SELECT count(*) FROM media_files").await, 1);
    assert_eq!(count("SELECT count(*) FROM data_processing_jobs").await, 1);
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE job_type = 'hash'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let task: timeline::jobs::MediaTask = serde_json::from_slice(&payload).unwrap();
    assert_eq!((task.media_file_id, task.job_id), (media.id, job2.id));
}
