//! After `timeline migrate`: every table and column of the data model, generated UUID keys,
//! foreign keys, indexes, RLS and the partitioned audit table exist; docs match the catalog.

use sqlx::PgPool;

use crate::common::migrate;

/// The data model's tables and columns (seeds/000_*.txt), as the migrations must provide them.
const MODEL: &[(&str, &[&str])] = &[
    (
        "users",
        &[
            "id",
            "email",
            "password_hash",
            "first_name",
            "last_name",
            "date_of_birth",
            "profile_picture_url",
            "bio",
            "timezone",
            "language",
            "is_active",
            "is_verified",
            "privacy_settings",
            "notification_settings",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "user_settings",
        &[
            "id",
            "user_id",
            "setting_key",
            "setting_value",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "memories",
        &[
            "id",
            "user_id",
            "title",
            "description",
            "memory_date",
            "created_date",
            "memory_type",
            "source_platform",
            "source_id",
            "location_id",
            "visibility",
            "is_favorite",
            "tags",
            "metadata",
            "processing_status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "media_files",
        &[
            "id",
            "user_id",
            "filename",
            "file_path",
            "file_size",
            "mime_type",
            "width",
            "height",
            "duration",
            "file_hash",
            "thumbnail_path",
            "processing_status",
            "metadata",
            "location_id",
            "taken_at",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "collections",
        &[
            "id",
            "user_id",
            "name",
            "description",
            "cover_image_id",
            "visibility",
            "sort_order",
            "created_at",
            "updated_at",
        ],
    ),
    ("collection_memories", &["collection_id", "memory_id"]),
    ("memory_media_files", &["memory_id", "media_file_id"]),
    (
        "persons",
        &[
            "id",
            "first_name",
            "last_name",
            "email",
            "profile_picture_url",
            "date_of_birth",
            "bio",
            "is_user",
            "user_id",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "user_persons",
        &[
            "id",
            "user_id",
            "person_id",
            "relationship_type",
            "relationship_status",
            "notes",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "memory_persons",
        &[
            "id",
            "memory_id",
            "person_id",
            "role",
            "x_coordinate",
            "y_coordinate",
            "confidence",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "locations",
        &[
            "id",
            "name",
            "address",
            "latitude",
            "longitude",
            "accuracy",
            "country",
            "country_code",
            "state_province",
            "city",
            "postal_code",
            "venue_name",
            "venue_type",
            "timezone",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "location_history",
        &[
            "id",
            "user_id",
            "location_id",
            "timestamp",
            "accuracy",
            "source",
            "created_at",
        ],
    ),
    (
        "audit_logs",
        &[
            "id",
            "user_id",
            "action",
            "resource_type",
            "resource_id",
            "old_values",
            "new_values",
            "ip_address",
            "user_agent",
            "timestamp",
        ],
    ),
    (
        "data_processing_jobs",
        &[
            "id",
            "user_id",
            "job_type",
            "status",
            "progress",
            "input_data",
            "output_data",
            "error_message",
            "started_at",
            "completed_at",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "system_configuration",
        &[
            "id",
            "config_key",
            "config_value",
            "description",
            "is_sensitive",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "comments",
        &["id", "memory_id", "user_id", "body", "created_at"],
    ),
    (
        "reactions",
        &["id", "memory_id", "user_id", "reaction_type"],
    ),
    (
        "shares",
        &[
            "id",
            "memory_id",
            "user_id",
            "shared_with_user_id",
            "permission",
        ],
    ),
    ("api_tokens", &["id", "user_id", "token_hash"]),
];

/// The model's "Indexing Strategy", by name.
const MODEL_INDEXES: &[&str] = &[
    "idx_users_email",
    "idx_users_active_verified",
    "idx_users_created_at",
    "idx_memories_user_id",
    "idx_memories_user_date",
    "idx_memories_location",
    "idx_memories_visibility",
    "idx_memories_tags",
    "idx_media_files_user_id",
    "idx_media_files_hash",
    "idx_media_files_taken_at",
    "idx_media_files_processing",
    "idx_locations_coordinates",
    "idx_locations_country_city",
    "idx_location_history_user_time",
    "idx_audit_logs_user_action",
    "idx_audit_logs_timestamp",
    "idx_processing_jobs_status",
    "idx_memories_user_date_visibility",
    "idx_media_files_user_type_status",
    "idx_memory_persons_memory_person",
    "idx_user_persons_user_relationship",
    // What the API needs beyond the model.
    "idx_media_files_user_timeline",
    "idx_media_files_user_hash",
    "idx_locations_user_earth",
];

#[sqlx::test(migrations = false)]
async fn every_table_and_column_of_the_model_exists(pool: PgPool) {
    migrate(&pool).await;
    for (table, columns) in MODEL {
        let present: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for c in *columns {
            assert!(present.iter().any(|p| p == c), "{table}.{c} is missing");
        }
        // UUID keys generated by the database.
        if present.iter().any(|p| p == "id") {
            let default: Option<String> = sqlx::query_scalar(
                "SELECT column_default FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'id'",
            )
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(
                default.as_deref(),
                Some("gen_random_uuid()"),
                "{table}.id default"
            );
        }
    }
}

#[sqlx::test(migrations = false)]
async fn model_indexes_foreign_keys_rls_and_partitioning_exist(pool: PgPool) {
    migrate(&pool).await;
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for i in MODEL_INDEXES {
        assert!(indexes.iter().any(|x| x == i), "index {i} missing");
    }
    let gin: String =
        sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_memories_tags'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(gin.contains("USING gin"), "{gin}");

    // Foreign keys with deliberate ON DELETE rules ('c' cascade, 'n' set null).
    let fks: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, confrelid::regclass::text, confdeltype::text
         FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for child in [
        "user_settings",
        "memories",
        "media_files",
        "collections",
        "user_persons",
        "locations",
        "location_history",
        "data_processing_jobs",
        "api_tokens",
        "comments",
        "reactions",
        "shares",
    ] {
        assert!(
            fks.iter()
                .any(|(c, p, d)| c == child && p == "users" && d == "c"),
            "{child} → users cascade"
        );
    }
    assert!(
        fks.iter()
            .any(|(c, p, d)| c == "media_files" && p == "locations" && d == "n")
    );
    assert!(
        fks.iter()
            .any(|(c, p, d)| c == "memory_media_files" && p == "media_files" && d == "c")
    );

    let no_rls: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
         AND relkind IN ('r', 'p') AND NOT relispartition AND NOT relrowsecurity AND relname <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        no_rls.is_empty(),
        "tables without row-level security: {no_rls:?}"
    );

    let kind: String =
        sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE relname = 'audit_logs'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kind, "p", "audit_logs is partitioned");
    let ahead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass
         AND inhrelid::regclass::text = 'audit_logs_' || to_char(now() + interval '6 months', 'YYYY_MM')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ahead, 1, "partitions exist months ahead");
}

#[sqlx::test(migrations = false)]
async fn schema_doc_matches_the_live_catalog(pool: PgPool) {
    migrate(&pool).await;
    let generated = timeline::db::catalog::schema_markdown(&pool).await.unwrap();
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/DATABASE_SCHEMA.md"
    ))
    .unwrap_or_default();
    assert!(
        generated.trim_end() == committed.trim_end(),
        "docs/DATABASE_SCHEMA.md is stale: run `timeline schema-doc > docs/DATABASE_SCHEMA.md`"
    );
}
