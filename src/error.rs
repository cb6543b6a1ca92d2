//! Errors that map onto Matrix error responses.
//!
//! Every failure in servership ends, sooner or later, as an HTTP answer to a remote server or as a
//! log line for an operator. One error type carries everything such an answer needs: the Matrix
//! `errcode`, the HTTP status and a message that says what was wrong and where
//! (`state[2].state_key must be ""`).

use std::fmt;

/// A Matrix `errcode`, as sent in the `errcode` field of an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrCode {
    /// The request body is not JSON at all.
    NotJson,
    /// The request body is JSON, but malformed for Matrix (canonical JSON rules, wrong types).
    BadJson,
    /// A parameter has an invalid value.
    InvalidParam,
    /// A required parameter is missing.
    MissingParam,
    /// The room version is not one this endpoint handles.
    IncompatibleRoomVersion,
    /// The request or one of its parts is larger than allowed.
    TooLarge,
    /// The sender has used up its budget; `retry_after_ms` says when to come back.
    LimitExceeded,
    /// The request is understood but refused.
    Forbidden,
    /// The request is not (correctly) authenticated.
    Unauthorized,
    /// Nothing is known about the requested thing.
    NotFound,
    /// Anything else: an internal failure, such as a storage error.
    Unknown,
}

impl ErrCode {
    /// The code as it appears on the wire, e.g. `M_BAD_JSON`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrCode::NotJson => "M_NOT_JSON",
            ErrCode::BadJson => "M_BAD_JSON",
            ErrCode::InvalidParam => "M_INVALID_PARAM",
            ErrCode::MissingParam => "M_MISSING_PARAM",
            ErrCode::IncompatibleRoomVersion => "M_INCOMPATIBLE_ROOM_VERSION",
            ErrCode::TooLarge => "M_TOO_LARGE",
            ErrCode::LimitExceeded => "M_LIMIT_EXCEEDED",
            ErrCode::Forbidden => "M_FORBIDDEN",
            ErrCode::Unauthorized => "M_UNAUTHORIZED",
            ErrCode::NotFound => "M_NOT_FOUND",
            ErrCode::Unknown => "M_UNKNOWN",
        }
    }

    /// The HTTP status a server answers with when it returns this code.
    pub fn default_status(self) -> u16 {
        match self {
            ErrCode::NotJson
            | ErrCode::BadJson
            | ErrCode::InvalidParam
            | ErrCode::MissingParam
            | ErrCode::IncompatibleRoomVersion => 400,
            ErrCode::Unauthorized => 401,
            ErrCode::Forbidden => 403,
            ErrCode::NotFound => 404,
            ErrCode::TooLarge => 413,
            ErrCode::LimitExceeded => 429,
            ErrCode::Unknown => 500,
        }
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with everything needed to answer it as a Matrix error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    errcode: ErrCode,
    status: u16,
    message: String,
    retry_after_ms: Option<u64>,
    room_version: Option<String>,
}

/// Shorthand for results whose error is a Matrix [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with the code's usual HTTP status.
    pub fn new(errcode: ErrCode, message: impl Into<String>) -> Self {
        Error {
            errcode,
            status: errcode.default_status(),
            message: message.into(),
            retry_after_ms: None,
            room_version: None,
        }
    }

    /// `M_NOT_JSON`: the bytes are not JSON.
    pub fn not_json(message: impl Into<String>) -> Self {
        Self::new(ErrCode::NotJson, message)
    }

    /// `M_BAD_JSON`: JSON that Matrix does not accept.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(ErrCode::BadJson, message)
    }

    /// `M_INVALID_PARAM`.
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(ErrCode::InvalidParam, message)
    }

    /// `M_MISSING_PARAM`.
    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(ErrCode::MissingParam, message)
    }

    /// `M_TOO_LARGE` (413).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrCode::TooLarge, message)
    }

    /// `M_FORBIDDEN` (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrCode::Forbidden, message)
    }

    /// `M_UNAUTHORIZED` (401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrCode::Unauthorized, message)
    }

    /// `M_LIMIT_EXCEEDED` (429) with the time after which the caller may try again.
    pub fn limit_exceeded(message: impl Into<String>, retry_after_ms: u64) -> Self {
        let mut e = Self::new(ErrCode::LimitExceeded, message);
        e.retry_after_ms = Some(retry_after_ms);
        e
    }

    /// `M_INCOMPATIBLE_ROOM_VERSION` (400), naming the version in the response body.
    pub fn incompatible_room_version(message: impl Into<String>, room_version: &str) -> Self {
        let mut e = Self::new(ErrCode::IncompatibleRoomVersion, message);
        e.room_version = Some(room_version.to_owned());
        e
    }

    /// `M_UNKNOWN` (500): a failure of ours, not of the request.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrCode::Unknown, message)
    }

    /// The same error under another errcode (and that code's usual HTTP status): a signature
    /// failure is `M_UNAUTHORIZED` on a request but `M_INVALID_PARAM` inside an invite.
    pub fn with_errcode(mut self, errcode: ErrCode) -> Self {
        self.errcode = errcode;
        self.status = errcode.default_status();
        self
    }

    /// The same error with another HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same error with its message prefixed by where it happened, e.g. `event.content: `.
    pub fn at(mut self, place: &str) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }

    /// The Matrix error code.
    pub fn errcode(&self) -> ErrCode {
        self.errcode
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// What was wrong and where.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For `M_LIMIT_EXCEEDED`: milliseconds until the caller may try again.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after_ms
    }

    /// For `M_INCOMPATIBLE_ROOM_VERSION`: the room version that was refused.
    pub fn room_version(&self) -> Option<&str> {
        self.room_version.as_deref()
    }

    /// The Matrix error response body, as canonical JSON.
    pub fn to_json(&self) -> String {
        use crate::json::{Object, Value};
        let mut o = Object::new();
        o.insert("errcode".into(), Value::from(self.errcode.as_str()));
        o.insert("error".into(), Value::from(self.message.as_str()));
        if let Some(ms) = self.retry_after_ms {
            o.insert(
                "retry_after_ms".into(),
                Value::Int(i64::try_from(ms).unwrap_or(i64::MAX)),
            );
        }
        if let Some(v) = &self.room_version {
            o.insert("room_version".into(), Value::from(v.as_str()));
        }
        Value::Object(o).to_canonical_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.errcode, self.status, self.message)
    }
}

impl std::error::Error for Error {}
