//! Row types for the whole schema, one module per area of the data model, plus the enums for
//! every enumerated column and the validated newtypes for what the database cannot check well.
//!
//! Enum values are the exact strings the database's CHECK constraints accept; a test keeps the
//! two lists in step.

mod enums;
pub mod location;
pub mod media;
pub mod memory;
pub mod newtypes;
pub mod person;
pub mod system;
pub mod user;

pub use enums::*;
pub use newtypes::{Email, HttpUrl, ValidationError};
