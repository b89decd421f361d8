//! The object store holding originals and thumbnails: local filesystem by default, any
//! S3-compatible service by URL (`TIMELINE_STORAGE=s3://bucket/prefix`, `AWS_*` variables).
//! Keys are made here from ids only; a client's filename never becomes part of a path.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use uuid::Uuid;

/// Errors talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid storage URL {url:?}: {reason}")]
    Config { url: String, reason: String },
    #[error("object not found: {0}")]
    NotFound(String),
    #[error("storage error: {0}")]
    Store(#[source] object_store::Error),
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Self::NotFound(path),
            other => Self::Store(other),
        }
    }
}

/// Which stored rendition of a media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Original,
    Thumb,
    Preview,
}

/// A handle to the configured object store (cheap to clone).
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.store)
    }
}

impl Storage {
    /// Opens the store named by `url`: `file:///abs/dir`, a plain directory path, or
    /// `s3://bucket/prefix` (credentials from the usual `AWS_*` environment variables).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let config_err = |reason: String| Error::Config {
            url: url.to_owned(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| config_err(e.to_string()))?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir).map_err(|e| config_err(e.to_string()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| config_err(e.to_string()))?;
            Arc::new(fs.with_automatic_cleanup(true))
        };
        Ok(Self { store })
    }

    /// The default store: `./data` under the working directory.
    pub fn default_url() -> String {
        let dir = std::env::current_dir().unwrap_or_default().join("data");
        format!("file://{}", dir.display())
    }

    /// The deterministic key of a rendition: retries and redeliveries overwrite, never add.
    pub fn key(user_id: Uuid, media_id: Uuid, rendition: Rendition) -> Path {
        let name = match rendition {
            Rendition::Original => "original",
            Rendition::Thumb => "thumb",
            Rendition::Preview => "preview",
        };
        Path::from(format!("media/{user_id}/{media_id}/{name}"))
    }

    /// The underlying store, for streaming uploads.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), Error> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &Path) -> Result<Bytes, Error> {
        Ok(self.store.get(key).await?.bytes().await?)
    }

    /// Deletes an object; a missing object is not an error (deletes are retried).
    pub async fn delete(&self, key: &Path) -> Result<(), Error> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every rendition of a media file.
    pub async fn delete_media(&self, user_id: Uuid, media_id: Uuid) -> Result<(), Error> {
        for r in [Rendition::Original, Rendition::Thumb, Rendition::Preview] {
            self.delete(&Self::key(user_id, media_id, r)).await?;
        }
        Ok(())
    }
}
