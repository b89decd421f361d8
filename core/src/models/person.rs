//! People and how they relate to users and memories.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{PersonRole, RelationshipStatus, RelationshipType};

/// `persons`: someone in a user's memories, private to the user who recorded them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Person {
    pub id: Uuid,
    pub created_by_user_id: Uuid,
    pub first_name: String,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub profile_picture_url: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub bio: Option<String>,
    pub is_user: bool,
    /// The person's own account, when they have one.
    pub user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `user_persons`: a user's relationship to a person.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserPerson {
    pub id: Uuid,
    pub user_id: Uuid,
    pub person_id: Uuid,
    pub relationship_type: RelationshipType,
    pub relationship_status: RelationshipStatus,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `memory_persons`: a person's part in a memory, with an optional face position.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MemoryPerson {
    pub id: Uuid,
    pub memory_id: Uuid,
    pub person_id: Uuid,
    pub user_id: Uuid,
    pub role: PersonRole,
    pub x_coordinate: Option<f64>,
    pub y_coordinate: Option<f64>,
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
