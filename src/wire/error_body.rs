//! The body of a refused request: `{"detail": "<reason>"}`, as the Beacon
//! and the auth endpoint (FastAPI services) answer an error.
//!
//! Layer: wire (pure). May import serde; must not do I/O or import the
//! shell.

use serde::{Deserialize, Serialize};

/// `{"detail": "<reason>"}`: what a refusal says, naming the field that
/// was wrong and what to do. Other fields are accepted and ignored when
/// read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The reason.
    pub detail: String,
}

impl ErrorBody {
    /// A body saying `detail`.
    pub fn new(detail: impl Into<String>) -> ErrorBody {
        ErrorBody {
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_detail() {
        let body = ErrorBody::new("missing field `tags`");
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(json, r#"{"detail":"missing field `tags`"}"#);
        let read: ErrorBody = serde_json::from_str(r#"{"detail":"x","code":7}"#).unwrap();
        assert_eq!(read, ErrorBody::new("x"));
    }
}
