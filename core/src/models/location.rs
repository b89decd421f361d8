//! Places and a user's location history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::LocationSource;

/// `locations`: a place, owned by the user whose photo or memory it came from.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Location {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub address: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy: Option<f64>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub state_province: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub venue_name: Option<String>,
    pub venue_type: Option<String>,
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `location_history`: where a user was, when.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LocationHistory {
    pub id: Uuid,
    pub user_id: Uuid,
    pub location_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub accuracy: Option<f64>,
    pub source: LocationSource,
    pub created_at: DateTime<Utc>,
}
