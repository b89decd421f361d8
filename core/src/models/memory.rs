//! Memories, collections, the joins between them and media, and social interactions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{
    CollectionSortOrder, MemoryType, ProcessingStatus, ReactionType, SharePermission,
    SourcePlatform, Visibility,
};

/// `memories`: one life event.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Memory {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub memory_date: DateTime<Utc>,
    pub created_date: DateTime<Utc>,
    pub memory_type: MemoryType,
    pub source_platform: SourcePlatform,
    pub source_id: Option<String>,
    pub location_id: Option<Uuid>,
    pub visibility: Visibility,
    pub is_favorite: bool,
    pub tags: serde_json::Value,
    pub metadata: serde_json::Value,
    pub processing_status: ProcessingStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `memory_media_files`: a media file shown in a memory.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MemoryMediaFile {
    pub memory_id: Uuid,
    pub media_file_id: Uuid,
    pub user_id: Uuid,
    pub position: i32,
    pub created_at: DateTime<Utc>,
}

/// `collections`: an album of memories.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Collection {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub cover_image_id: Option<Uuid>,
    pub visibility: Visibility,
    pub sort_order: CollectionSortOrder,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `collection_memories`: a memory in a collection.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CollectionMemory {
    pub collection_id: Uuid,
    pub memory_id: Uuid,
    pub user_id: Uuid,
    pub position: i32,
    pub created_at: DateTime<Utc>,
}

/// `shares`: a memory shared with another user or by link.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Share {
    pub id: Uuid,
    pub memory_id: Uuid,
    pub user_id: Uuid,
    pub shared_with_user_id: Option<Uuid>,
    #[serde(skip)]
    pub link_token_hash: Option<Vec<u8>>,
    pub permission: SharePermission,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `comments`: a comment on a memory.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Comment {
    pub id: Uuid,
    pub memory_id: Uuid,
    pub user_id: Uuid,
    pub parent_comment_id: Option<Uuid>,
    pub body: String,
    pub is_edited: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `reactions`: one user's reaction to a memory.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Reaction {
    pub id: Uuid,
    pub memory_id: Uuid,
    pub user_id: Uuid,
    pub reaction_type: ReactionType,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
