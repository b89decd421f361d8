//! Configuration read once at start-up from flags and environment variables (clap `env`).

use clap::Args;

/// Default database: the local PostgreSQL of a development machine.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/timeline";

/// Database connection settings, shared by every command.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Most connections this process opens (web and worker alike; see docs/OPERATIONS.md for
    /// sizing N hosts against PostgreSQL's `max_connections`).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// A direct PostgreSQL URL for what needs a session of its own: `LISTEN` and the
    /// reconciler's leader lock (at most 2 connections per process). Setting it declares
    /// `DATABASE_URL` a transaction-mode pooler (PgBouncer `pool_mode = transaction`): its
    /// connections then keep no prepared statements between transactions (see
    /// docs/SCALING.md for the pooler's required settings).
    #[arg(long, env = "DATABASE_SESSION_URL", hide_env_values = true)]
    pub database_session_url: Option<String>,
}

impl DatabaseConfig {
    /// Settings for `url` (no pooler), with `max_connections` connections.
    pub fn direct(url: impl Into<String>, max_connections: u32) -> Self {
        Self {
            database_url: url.into(),
            database_max_connections: max_connections,
            database_session_url: None,
        }
    }

    /// Whether `DATABASE_URL` is a transaction-mode pooler: a distinct session URL is set.
    pub fn pooled(&self) -> bool {
        self.database_session_url
            .as_ref()
            .is_some_and(|s| *s != self.database_url)
    }
}

/// Where originals and thumbnails are stored.
#[derive(Debug, Clone, Args)]
pub struct StorageConfig {
    /// Object store URL: `file:///dir` (default `./data`) or `s3://bucket/prefix`.
    #[arg(long = "storage", env = "TIMELINE_STORAGE")]
    pub storage_url: Option<String>,
}

impl StorageConfig {
    /// Opens the configured store.
    pub fn open(&self) -> Result<crate::storage::Storage, crate::storage::Error> {
        let url = self
            .storage_url
            .clone()
            .unwrap_or_else(crate::storage::Storage::default_url);
        crate::storage::Storage::from_url(&url)
    }
}

/// Default largest file: 10 GiB, room for a long 4K clip (originals are streamed, so the limit
/// is about storage, not memory).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 << 30;
/// Default largest import archive uploaded for `POST /v1/imports`: 50 GiB, the largest part
/// Google Takeout offers (a Facebook or Takeout export is one zip per part, each far larger
/// than any one media file).
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 50 << 30;
/// Default largest request (all files of one upload together).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 20 << 30;

/// Upload limits as the web process applies them (see [`UploadLimitArgs::resolve`]).
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: u64,
    /// Largest accepted request (all files together), in bytes.
    pub max_request_bytes: u64,
    /// Most multipart parts in one request (every part counts, named `file` or not).
    pub max_parts: usize,
    /// Formats accepted (`None`: every format the sniffer knows).
    pub allowed_types: Option<std::sync::Arc<[crate::format::MediaFormat]>>,
    /// What one account may store in originals, in bytes (`None`: no quota).
    pub user_quota_bytes: Option<u64>,
    /// Largest import archive (a tus upload with `purpose import`), in bytes.
    pub max_archive_bytes: u64,
}

impl UploadLimits {
    /// Whether `format` may be uploaded here.
    pub fn allows(&self, format: crate::format::MediaFormat) -> bool {
        self.allowed_types
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&format))
    }
}

/// Upload limits: a flag or environment variable wins, else the value recorded in
/// `system_configuration` (`upload.*`), else the built-in default.
#[derive(Debug, Clone, Args)]
pub struct UploadLimitArgs {
    /// Largest accepted file, in bytes (default: `upload.max_file_bytes`, else 10 GiB).
    #[arg(long, env = "TIMELINE_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Largest accepted request, all files together (default: `upload.max_request_bytes`,
    /// else 20 GiB).
    #[arg(long, env = "TIMELINE_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<u64>,
    /// Most multipart parts in one request (every part counts, named `file` or not).
    #[arg(long, env = "TIMELINE_MAX_PARTS", default_value_t = 100)]
    pub max_parts: usize,
    /// Accepted types, comma-separated MIME types (default: `upload.allowed_types`, else all).
    #[arg(long, env = "TIMELINE_ALLOWED_TYPES", value_delimiter = ',')]
    pub allowed_types: Option<Vec<String>>,
    /// What one account may store in originals, in bytes (default: `upload.user_quota_bytes`,
    /// else no quota). An upload past it answers 413.
    #[arg(long, env = "TIMELINE_USER_QUOTA_BYTES")]
    pub user_quota_bytes: Option<u64>,
    /// Largest import archive uploaded for `POST /v1/imports`, in bytes (default 50 GiB; the
    /// files inside are each held to the largest file).
    #[arg(long, env = "TIMELINE_MAX_ARCHIVE_BYTES", default_value_t = DEFAULT_MAX_ARCHIVE_BYTES)]
    pub max_archive_bytes: u64,
}

impl UploadLimitArgs {
    /// The limits in force, given what the database records.
    pub fn resolve(
        &self,
        recorded: &crate::db::settings::Recorded,
    ) -> Result<UploadLimits, String> {
        let allowed_types = match &self.allowed_types {
            Some(list) => Some(
                list.iter()
                    .map(|m| {
                        crate::format::MediaFormat::from_mime(m.trim())
                            .ok_or_else(|| format!("TIMELINE_ALLOWED_TYPES: unknown type {m:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => recorded.allowed_types.clone(),
        };
        Ok(UploadLimits {
            max_file_bytes: self
                .max_file_bytes
                .or(recorded.max_file_bytes)
                .unwrap_or(DEFAULT_MAX_FILE_BYTES),
            max_request_bytes: self
                .max_request_bytes
                .or(recorded.max_request_bytes)
                .unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
            max_parts: self.max_parts,
            allowed_types: allowed_types.map(Into::into),
            user_quota_bytes: self
                .user_quota_bytes
                .filter(|n| *n > 0)
                .or(recorded.user_quota_bytes),
            max_archive_bytes: self.max_archive_bytes,
        })
    }
}

/// Attempts per step: `TIMELINE_MAX_ATTEMPTS` wins, else `jobs.max_attempts`, else 5. Applied
/// process-wide (every enqueue and every worker's give-up) by [`apply_max_attempts`].
pub fn apply_max_attempts(recorded: &crate::db::settings::Recorded) {
    let from_env = std::env::var("TIMELINE_MAX_ATTEMPTS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0);
    if let Some(n) = from_env.or(recorded.max_attempts) {
        crate::jobs::set_max_attempts(n);
    }
}

/// `timeline serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "TIMELINE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// The URL users reach this API at (`https://timeline.example.org`), when a proxy stands
    /// in front. The dashboard accepts form posts from that origin only, and marks its cookie
    /// `Secure` when it is https.
    #[arg(long, env = "TIMELINE_PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    #[command(flatten)]
    pub storage: StorageConfig,
    #[command(flatten)]
    pub limits: UploadLimitArgs,
    #[command(flatten)]
    pub connections: ConnectionLimits,
    #[command(flatten)]
    pub user_caps: UserCapArgs,
    #[command(flatten)]
    pub replica: ReplicaArgs,
}

/// A streaming replica for the API's list and detail reads (docs/SCALING.md).
#[derive(Debug, Clone, Args)]
pub struct ReplicaArgs {
    /// PostgreSQL URL of a hot standby (or a pooler in front of one). Job polls, media lists
    /// and details, and collection lists read there while it is at most
    /// `DATABASE_READ_MAX_LAG_MS` behind the primary, and from the primary otherwise.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,
    /// The most staleness a read on the replica may show, in milliseconds: the replica is
    /// used only while it has replayed everything the primary had committed this long ago.
    #[arg(long, env = "DATABASE_READ_MAX_LAG_MS", default_value_t = 1000)]
    pub database_read_max_lag_ms: u64,
}

/// What one user may hold open in one web process; past a cap the API answers 429.
#[derive(Debug, Clone, Copy, Args)]
pub struct UserCapArgs {
    /// Requests in flight per user.
    #[arg(long, env = "TIMELINE_MAX_USER_REQUESTS", default_value_t = 64)]
    pub max_user_requests: u32,
    /// Uploads in flight per user (`POST /v1/media`, tus `POST` and `PATCH`).
    #[arg(long, env = "TIMELINE_MAX_USER_UPLOADS", default_value_t = 8)]
    pub max_user_uploads: u32,
    /// Open job event streams per user.
    #[arg(long, env = "TIMELINE_MAX_USER_STREAMS", default_value_t = 8)]
    pub max_user_streams: u32,
}

/// How long a connection may be slow or idle, and how many may be open (slowloris guards).
#[derive(Debug, Clone, Copy, Args)]
pub struct ConnectionLimits {
    /// Seconds a client has to send a request head (also the idle keep-alive limit).
    #[arg(long, env = "TIMELINE_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks.
    #[arg(long, env = "TIMELINE_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,
    /// Seconds a response write may stall (a client that stopped reading).
    #[arg(long, env = "TIMELINE_WRITE_TIMEOUT_SECS", default_value_t = 60)]
    pub write_timeout_secs: u64,
    /// Most connections open at once; more wait in the listen backlog.
    #[arg(long, env = "TIMELINE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}
