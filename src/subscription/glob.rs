//! Glob matching for server names: `*` matches zero or more characters, `?` exactly one, every
//! other character itself, **ASCII-case-insensitively** (`EVIL.example` matches `evil.example`,
//! as in the spec's server ACLs since MSC4436 and in Synapse's evaluator). Used by
//! `m.room.server_acl`, `m.policy.rule.server` entities and the operator's deny lists; callers
//! remove the port before matching ([`super::acl::strip_port`]).
//!
//! Non-ASCII letters are compared exactly (server names are ASCII; an IDN is punycoded).
//!
//! **Length.** A pattern may be as long as anything a PDU can carry ([`MAX_PATTERN_BYTES`]):
//! Synapse honours every entry of an ACL, however long, so this matcher does too. A subject is a
//! server name, at most 253 bytes plus a port; a subject longer than [`MAX_SUBJECT_CHARS`] is not
//! one and never matches (callers that enforce a deny list refuse such a name outright).
//!
//! **Cost.** Runs of `*` are collapsed when compiling, and a pattern needing more characters than
//! the subject has is refused before any matching. What is left is matched with the classic
//! single-backtrack-point algorithm, which on a mismatch only returns to the most recent `*`: at
//! most (2 × subject + 1) × subject steps, never exponential (`*a*a*a*…b` against a long name
//! finishes in microseconds), whatever the pattern's length.

use crate::error::{Error, Result};

/// The longest pattern, in bytes: the PDU size limit, so every entry an event can carry is kept.
pub const MAX_PATTERN_BYTES: usize = 65_536;
/// The longest subject, in characters; longer subjects are not server names and never match.
pub const MAX_SUBJECT_CHARS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters (consecutive stars are collapsed into one).
    Star,
    /// `?`: exactly one character.
    One,
    /// A literal character, ASCII letters lower-cased.
    Char(char),
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
    /// How many subject characters a match needs at least (the non-`*` tokens).
    min_len: usize,
}

impl Glob {
    /// Compiles `pattern`; `M_TOO_LARGE` if longer than [`MAX_PATTERN_BYTES`] bytes (more than
    /// any event can carry).
    pub fn new(pattern: &str) -> Result<Self> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(Error::too_large(format!(
                "a glob must not exceed {MAX_PATTERN_BYTES} bytes"
            )));
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let t = match c {
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Char(c.to_ascii_lowercase()),
            };
            if t == Token::Star && tokens.last() == Some(&Token::Star) {
                continue;
            }
            tokens.push(t);
        }
        let min_len = tokens.iter().filter(|t| **t != Token::Star).count();
        Ok(Glob {
            pattern: pattern.to_owned(),
            tokens,
            min_len,
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The pattern for a log line or a decision's detail: quoted, and cut to its first 100
    /// characters with `…` if longer (an ACL entry may be 64 KiB of hostile text).
    pub fn shown(&self) -> String {
        let mut head: String = self.pattern.chars().take(100).collect();
        if head.len() < self.pattern.len() {
            head.push('…');
        }
        format!("{head:?}")
    }

    /// True if the whole of `subject` matches, ignoring ASCII case. A subject longer than
    /// [`MAX_SUBJECT_CHARS`] never matches.
    pub fn matches(&self, subject: &str) -> bool {
        let s: Vec<char> = subject
            .chars()
            .take(MAX_SUBJECT_CHARS + 1)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if s.len() > MAX_SUBJECT_CHARS || self.min_len > s.len() {
            return false;
        }
        let p = &self.tokens;
        let (mut pi, mut si) = (0usize, 0usize);
        // The most recent `*` (pattern index after it) and the subject index it is trying from.
        let mut star: Option<(usize, usize)> = None;
        while let Some(&c) = s.get(si) {
            match p.get(pi) {
                Some(Token::Star) => {
                    star = Some((pi + 1, si));
                    pi += 1;
                }
                Some(Token::One) => {
                    pi += 1;
                    si += 1;
                }
                Some(Token::Char(t)) if *t == c => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    Some((after, from)) => {
                        // Let that `*` swallow one more character and retry.
                        pi = after;
                        si = from + 1;
                        star = Some((after, from + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|t| *t == Token::Star))
    }
}

/// True if `subject` is too long to be a server name (more than [`MAX_SUBJECT_CHARS`]
/// characters): no glob matches it, so deny lists refuse it explicitly.
pub fn subject_too_long(subject: &str) -> bool {
    subject.chars().nth(MAX_SUBJECT_CHARS).is_some()
}
