//! Validated domain newtypes: values that must be checked before they reach the database,
//! where a CHECK constraint would be too coarse (email) or cannot parse at all (URL).

use std::fmt;

/// Why a value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("invalid email address: {0}")]
    Email(&'static str),
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("unknown {kind} value {value:?}")]
    UnknownValue { kind: &'static str, value: String },
}

/// An email address: trimmed, at most 254 bytes, one `@`, a non-empty local part and a dotted
/// domain of letters, digits and hyphens. The domain is lower-cased; the local part is kept as
/// given (uniqueness in the database is case-insensitive anyway).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates and normalises an address.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if s.len() > 254 {
            return Err(ValidationError::Email("longer than 254 bytes"));
        }
        let (local, domain) = s
            .split_once('@')
            .ok_or(ValidationError::Email("missing @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(ValidationError::Email("local part must be 1 to 64 bytes"));
        }
        if local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
        {
            return Err(ValidationError::Email(
                "local part has a space, control character or @",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(ValidationError::Email("domain needs a dot"));
        }
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !labels.iter().all(label_ok) {
            return Err(ValidationError::Email(
                "domain labels must be letters, digits or hyphens",
            ));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute `http` or `https` URL with a host (profile pictures and the like).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// Parses and normalises a URL, refusing other schemes (`javascript:`, `file:`, `data:`).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let url = url::Url::parse(raw.trim()).map_err(|e| ValidationError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ValidationError::Url(format!(
                "scheme {:?} is not http(s)",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ValidationError::Url("no host".into()));
        }
        if url.as_str().len() > 2048 {
            return Err(ValidationError::Url("longer than 2048 bytes".into()));
        }
        Ok(Self(url.into()))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.ORG ").map(|e| e.0),
            Ok("Ann@example.org".into())
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@x.org",
            "a b@x.org",
            "a@x..org",
            "a@-x.org",
            "a@x.org@y.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@x.org", "a".repeat(65))).is_err());
    }

    #[test]
    fn urls() {
        assert!(HttpUrl::parse("https://example.org/a.jpg").is_ok());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "not a url",
            "data:image/png;base64,AA",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
