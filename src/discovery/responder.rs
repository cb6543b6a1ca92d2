//! Answering `POST .../discover_common_rooms`: which of the asked tags does this server hold?
//!
//! [MSC4358](https://github.com/matrix-org/matrix-spec-proposals/pull/4358) and DESIGN.md §1. The
//! request body is `{"room_participation_tags": ["<43 chars>", ...]}`, the answer
//! `{"recognised_tags": [...]}`: the tags this server holds, each once, in request order, spelled
//! exactly as the requester spelled them (so a requester may match answers by string).
//!
//! Limits, in the order they are checked:
//! 1. the body is at most [`ResponderConfig::max_body_bytes`] (`413 M_TOO_LARGE`), checked before
//!    parsing so hostile bodies stay cheap;
//! 2. the body is a JSON object (`M_NOT_JSON` / `M_BAD_JSON`) whose `room_participation_tags` is
//!    present (`M_MISSING_PARAM`) and an array (`M_BAD_JSON`);
//! 3. at most [`ResponderConfig::max_tags_per_request`] tags (`413 M_TOO_LARGE`);
//! 4. each element is a string (`M_BAD_JSON`) holding 32 bytes of base64 (`M_INVALID_PARAM`), the
//!    message naming the index: `room_participation_tags[3] is not 32 bytes of base64`;
//! 5. the origin's budget of tags per window (`429 M_LIMIT_EXCEEDED` with `retry_after_ms`),
//!    charged under [`normalise_origin`] of the origin through a [`Budget`]: in memory by default
//!    ([`MemoryBudget`]), or shared by every process on the store's file
//!    (`store::SqliteBudget`, [`Responder::with_budget`]).
//!
//! Only well-formed requests are charged to the budget, by the number of tags they carry.
//! Unknown top-level keys are ignored, as everywhere in Matrix.

use std::collections::HashSet;
use std::sync::Arc;

use crate::discovery::budget::{Budget, MemoryBudget, normalise_origin};
use crate::discovery::index::TagHashBuilder;
use crate::discovery::tag::decode_43;
use crate::discovery::{ParticipationTag, STABLE_PATH, TagSet, UNSTABLE_PATH};
use crate::error::{Error, Result};
use crate::json::{self, Value};

/// The request's one field.
pub const REQUEST_FIELD: &str = "room_participation_tags";
/// The response's one field.
pub const RESPONSE_FIELD: &str = "recognised_tags";

/// Limits and switches for a [`Responder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Most tags one request may carry (default 1000). More is `413 M_TOO_LARGE`.
    pub max_tags_per_request: usize,
    /// Largest request body in bytes. `None` (the default) allows 64 bytes a tag plus 4 KiB, far
    /// more than any well-formed request needs (a tag takes 46 bytes in the array).
    pub max_body_bytes: Option<usize>,
    /// Tags one origin may ask about per window (default 10,000). Used by [`Responder::new`]'s
    /// [`MemoryBudget`]; a budget given to [`Responder::with_budget`] has its own.
    pub budget_tags: u64,
    /// The budget window in milliseconds (default 60,000), likewise.
    pub budget_window_ms: u64,
    /// How many origins' budgets [`Responder::new`]'s [`MemoryBudget`] remembers at most (default
    /// 100,000). When full, origins whose window has ended are forgotten first, then the one whose
    /// window started earliest.
    pub max_tracked_origins: usize,
    /// Also serve the stable path [`STABLE_PATH`] (default off, until the MSC is merged).
    pub stable_path: bool,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            max_tags_per_request: 1000,
            max_body_bytes: None,
            budget_tags: 10_000,
            budget_window_ms: 60_000,
            max_tracked_origins: 100_000,
            stable_path: false,
        }
    }
}

impl ResponderConfig {
    /// The body size limit in force.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes.unwrap_or_else(|| {
            self.max_tags_per_request
                .saturating_mul(64)
                .saturating_add(4096)
        })
    }

    /// Checks the settings make sense together; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        if self.max_tags_per_request == 0 {
            return Err(Error::invalid_param(
                "max_tags_per_request must be at least 1",
            ));
        }
        if self.budget_window_ms == 0 {
            return Err(Error::invalid_param("budget_window_ms must be at least 1"));
        }
        if self.budget_tags < self.max_tags_per_request as u64 {
            return Err(Error::invalid_param(format!(
                "budget_tags ({}) must be at least max_tags_per_request ({}), or a full request \
                 could never be answered",
                self.budget_tags, self.max_tags_per_request
            )));
        }
        if self.max_tracked_origins == 0 {
            return Err(Error::invalid_param(
                "max_tracked_origins must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Serves `discover_common_rooms` from a [`TagSet`] (usually a
/// [`TagStore`](crate::store::TagStore)). Shareable across threads.
#[derive(Debug)]
pub struct Responder {
    store: Arc<dyn TagSet>,
    config: ResponderConfig,
    budget: Arc<dyn Budget>,
}

impl Responder {
    /// A responder answering from `store` under `config` (checked with
    /// [`ResponderConfig::validate`]), with per-origin budgets in this process's memory
    /// ([`MemoryBudget`] of `budget_tags` per `budget_window_ms`).
    pub fn new(store: Arc<impl TagSet + 'static>, config: ResponderConfig) -> Result<Responder> {
        config.validate()?;
        let budget = MemoryBudget::new(
            config.budget_tags,
            config.budget_window_ms,
            config.max_tracked_origins,
        )?;
        Ok(Responder {
            store,
            config,
            budget: Arc::new(budget),
        })
    }

    /// A responder charging `budget` instead of a budget of its own, e.g. a
    /// [`SqliteBudget`](crate::store::SqliteBudget) on the store's file, which every process
    /// answering for this server shares. The budget's own limits apply; `config` is still
    /// checked as a whole.
    pub fn with_budget(
        store: Arc<impl TagSet + 'static>,
        config: ResponderConfig,
        budget: Arc<dyn Budget>,
    ) -> Result<Responder> {
        config.validate()?;
        Ok(Responder {
            store,
            config,
            budget,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ResponderConfig {
        &self.config
    }

    /// The tag set answers come from.
    pub fn store(&self) -> &Arc<dyn TagSet> {
        &self.store
    }

    /// The budget requests are charged to.
    pub fn budget(&self) -> &Arc<dyn Budget> {
        &self.budget
    }

    /// The paths to serve: the unstable one always, the stable one if configured.
    pub fn paths(&self) -> Vec<&'static str> {
        let mut paths = vec![UNSTABLE_PATH];
        if self.config.stable_path {
            paths.push(STABLE_PATH);
        }
        paths
    }

    /// Answers one request from the authenticated server `origin` at time `now_ms`: request body
    /// bytes in, canonical JSON response bytes out. An error carries the HTTP status and the
    /// Matrix error body ([`Error::status`], [`Error::to_json`]).
    pub fn respond(&self, body: &[u8], origin: &str, now_ms: u64) -> Result<Vec<u8>> {
        let owned;
        let asked: Vec<(&[u8], ParticipationTag)> = match scan_plain_request(body, &self.config) {
            Some(asked) => asked,
            None => {
                owned = parse_request(body, &self.config)?;
                owned
                    .iter()
                    .map(|(text, tag)| (text.as_bytes(), *tag))
                    .collect()
            }
        };
        self.budget
            .charge(&normalise_origin(origin), asked.len() as u64, now_ms)?;
        let tags: Vec<ParticipationTag> = asked.iter().map(|(_, t)| *t).collect();
        let known = self.store.recognise(&tags)?;
        // Only recognised tags enter the set, and those are our own HMAC outputs: the cheap
        // prefix hash cannot be steered into collisions by the requester.
        let mut seen = HashSet::with_capacity_and_hasher(asked.len().min(64), TagHashBuilder);
        let mut out = Vec::with_capacity(24 + asked.len() * 24);
        out.extend_from_slice(b"{\"recognised_tags\":[");
        let mut first = true;
        for ((text, tag), known) in asked.iter().zip(known) {
            if known && seen.insert(tag.0) {
                if !first {
                    out.push(b',');
                }
                first = false;
                // Every accepted tag text decoded as base64, so it holds only base64 characters
                // and `=`: canonical JSON writes it as is.
                out.push(b'"');
                out.extend_from_slice(text);
                out.push(b'"');
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// How many tags `origin` (normalised with [`normalise_origin`]) may still ask about in its
    /// current window at `now_ms`.
    pub fn remaining_budget(&self, origin: &str, now_ms: u64) -> Result<u64> {
        self.budget.remaining(&normalise_origin(origin), now_ms)
    }
}

/// The fast path for the request every well-behaved server sends: `{"room_participation_tags":
/// ["<tag>", ...]}` (any JSON whitespace), every element a plain base64 string that decodes to a
/// tag, within the limits. It borrows the tags from `body` instead of building a JSON tree.
///
/// Anything else — another key, an escape, a bad tag, too many tags, trailing data — gives `None`
/// and the request goes through [`parse_request`], which accepts exactly what this accepts (and
/// more) and produces the precise error. So the fast path changes speed, never answers.
fn scan_plain_request<'a>(
    body: &'a [u8],
    config: &ResponderConfig,
) -> Option<Vec<(&'a [u8], ParticipationTag)>> {
    if body.len() > config.body_limit() {
        return None;
    }
    let mut pos = 0;
    let skip_ws = |pos: &mut usize| {
        while matches!(body.get(*pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *pos += 1;
        }
    };
    let expect = |pos: &mut usize, text: &[u8]| -> Option<()> {
        let end = pos.checked_add(text.len())?;
        (body.get(*pos..end)? == text).then(|| *pos = end)
    };
    skip_ws(&mut pos);
    expect(&mut pos, b"{")?;
    skip_ws(&mut pos);
    expect(&mut pos, b"\"room_participation_tags\"")?;
    skip_ws(&mut pos);
    expect(&mut pos, b":")?;
    skip_ws(&mut pos);
    expect(&mut pos, b"[")?;
    skip_ws(&mut pos);
    let mut tags = Vec::new();
    if body.get(pos) == Some(&b']') {
        pos += 1;
    } else {
        loop {
            expect(&mut pos, b"\"")?;
            let start = pos;
            let end = start.checked_add(43)?;
            let tag = decode_43(body.get(start..end)?)?;
            pos = end;
            if body.get(pos) == Some(&b'=') {
                pos += 1;
            }
            let text = body.get(start..pos)?;
            expect(&mut pos, b"\"")?;
            tags.push((text, ParticipationTag(tag)));
            if tags.len() > config.max_tags_per_request {
                return None;
            }
            skip_ws(&mut pos);
            match body.get(pos) {
                Some(b',') => {
                    pos += 1;
                    skip_ws(&mut pos);
                }
                Some(b']') => {
                    pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    skip_ws(&mut pos);
    expect(&mut pos, b"}")?;
    skip_ws(&mut pos);
    (pos == body.len()).then_some(tags)
}

/// Reads and checks a request body; returns each tag with its original spelling.
fn parse_request(body: &[u8], config: &ResponderConfig) -> Result<Vec<(String, ParticipationTag)>> {
    let limit = config.body_limit();
    if body.len() > limit {
        return Err(Error::too_large(format!(
            "the request body is {} bytes; at most {limit} are accepted",
            body.len()
        )));
    }
    let value = json::parse(body)?;
    let Value::Object(mut object) = value else {
        return Err(Error::bad_json(format!(
            "the request body must be an object, not {}",
            value.type_name()
        )));
    };
    let tags = match object.remove(REQUEST_FIELD) {
        None => {
            return Err(Error::missing_param(format!("{REQUEST_FIELD} is required")));
        }
        Some(Value::Array(tags)) => tags,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "{REQUEST_FIELD} must be an array, not {}",
                other.type_name()
            )));
        }
    };
    if tags.len() > config.max_tags_per_request {
        return Err(Error::too_large(format!(
            "{REQUEST_FIELD} has {} tags; at most {} are accepted per request",
            tags.len(),
            config.max_tags_per_request
        )));
    }
    tags.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(text) => match ParticipationTag::from_base64(&text) {
                Some(tag) => Ok((text, tag)),
                None => Err(Error::invalid_param(format!(
                    "{REQUEST_FIELD}[{i}] is not 32 bytes of base64"
                ))),
            },
            other => Err(Error::bad_json(format!(
                "{REQUEST_FIELD}[{i}] must be a string, not {}",
                other.type_name()
            ))),
        })
        .collect()
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    #[test]
    fn well_formed_requests_take_the_fast_path_and_others_do_not() {
        let config = ResponderConfig::default();
        let tag = crate::discovery::participation_tag("a.example", "!r:a.example").to_base64();
        let plain = format!("{{\"room_participation_tags\":[\"{tag}\",\"{tag}=\"]}}");
        let spaced = format!(" {{ \"room_participation_tags\" : [ \"{tag}\" ,\n\"{tag}\" ] }} ");
        for body in [
            plain.as_str(),
            spaced.as_str(),
            r#"{"room_participation_tags":[]}"#,
        ] {
            assert!(
                scan_plain_request(body.as_bytes(), &config).is_some(),
                "{body}"
            );
        }
        for body in [
            format!("{{\"room_participation_tags\":[\"{tag}\"],\"x\":1}}"),
            format!("{{\"room_participation_tags\":[\"{tag}\\u0041\"]}}"),
            format!("{{\"room_participation_tags\":[\"{}\"]}}", &tag[..40]),
            format!("{{\"room_participation_tags\":[\"{tag}\",]}}"),
            format!("{{\"room_participation_tags\":[\"{tag}\"]}}x"),
        ] {
            assert!(
                scan_plain_request(body.as_bytes(), &config).is_none(),
                "{body}"
            );
        }
    }
}
