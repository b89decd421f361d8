//! Enumerated columns as Rust enums. Each is stored as `text` with a CHECK constraint listing
//! the same values (see the migrations); `ALL` lets tests compare the two.

/// Declares a text-backed enum with serde, sqlx, `as_str`, `FromStr` and an `ALL` list.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[sqlx(type_name = "text")]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                #[sqlx(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as stored in the database and sent over the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::models::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::models::ValidationError::UnknownValue {
                        kind: stringify!($name),
                        value: other.chars().take(64).collect(),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// Who may see a memory or collection.
    Visibility { Private => "private", Friends => "friends", Public => "public" }
);

text_enum!(
    /// What kind of life event a memory records.
    MemoryType {
        Photo => "photo", Video => "video", Text => "text", Audio => "audio",
        Event => "event", Checkin => "checkin", Link => "link", Milestone => "milestone",
    }
);

text_enum!(
    /// Where a memory was imported from.
    SourcePlatform {
        Timeline => "timeline", Upload => "upload", Facebook => "facebook", Instagram => "instagram",
        GooglePhotos => "google_photos", Twitter => "twitter", ApplePhotos => "apple_photos", Other => "other",
    }
);

text_enum!(
    /// Processing state of a media file (and, without `Duplicate`, of a memory).
    ProcessingStatus {
        Pending => "pending", Processing => "processing", Completed => "completed",
        Failed => "failed", Duplicate => "duplicate",
    }
);

impl JobStatus {
    /// End states of a job.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl ProcessingStatus {
    /// End states: nothing more will happen to the file without a retry.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Duplicate)
    }
}

text_enum!(
    /// How a media file's `taken_at` was decided.
    TakenAtSource { ExifOffset => "exif_offset", GpsTimezone => "gps_timezone", LocalTime => "local_time", ContainerUtc => "container_utc", Sidecar => "sidecar" }
);

text_enum!(
    /// Lifecycle of a `data_processing_jobs` row.
    JobStatus {
        Pending => "pending", Running => "running", Completed => "completed",
        Failed => "failed", Cancelled => "cancelled",
    }
);

text_enum!(
    /// Kinds of tracked background jobs.
    JobType {
        MediaIngest => "media_ingest", MediaReprocess => "media_reprocess", Import => "import",
        Export => "export", AccountDeletion => "account_deletion",
    }
);

text_enum!(
    /// A user's relationship to a person.
    RelationshipType {
        Family => "family", Partner => "partner", Friend => "friend", Colleague => "colleague",
        Classmate => "classmate", Neighbor => "neighbor", Acquaintance => "acquaintance", Other => "other",
    }
);

text_enum!(
    /// State of a user↔person relationship.
    RelationshipStatus { Active => "active", Pending => "pending", Blocked => "blocked", Archived => "archived" }
);

text_enum!(
    /// A person's part in a memory.
    PersonRole {
        Subject => "subject", Photographer => "photographer", Mentioned => "mentioned",
        Tagged => "tagged", Attendee => "attendee", Creator => "creator",
    }
);

text_enum!(
    /// Account role.
    UserRole { User => "user", Admin => "admin" }
);

text_enum!(
    /// Where a location-history point came from.
    LocationSource {
        Gps => "gps", PhotoExif => "photo_exif", Wifi => "wifi", Cell => "cell",
        Manual => "manual", Import => "import",
    }
);

text_enum!(
    /// Default ordering of a collection.
    CollectionSortOrder { DateDesc => "date_desc", DateAsc => "date_asc", Title => "title", Manual => "manual" }
);

text_enum!(
    /// What an audit row records.
    AuditAction {
        Create => "create", Update => "update", Delete => "delete",
        Login => "login", Access => "access", Export => "export",
    }
);

text_enum!(
    /// Reactions to a memory.
    ReactionType { Like => "like", Love => "love", Laugh => "laugh", Wow => "wow", Sad => "sad", Care => "care" }
);

text_enum!(
    /// What a share lets its recipient do.
    SharePermission { View => "view", Comment => "comment", React => "react" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for s in ProcessingStatus::ALL {
            assert_eq!(s.as_str().parse::<ProcessingStatus>().ok(), Some(*s));
        }
        assert!("bogus".parse::<Visibility>().is_err());
        assert_eq!(
            serde_json::to_string(&JobType::MediaIngest).ok().as_deref(),
            Some("\"media_ingest\"")
        );
    }

    #[test]
    fn final_states() {
        assert!(ProcessingStatus::Duplicate.is_final());
        assert!(!ProcessingStatus::Processing.is_final());
    }
}
