//! Glob matching for server names: `*` matches zero or more characters, `?` exactly one, every
//! other character itself (case-sensitive, like server names). Used by `m.room.server_acl`,
//! `m.policy.rule.server` entities and the operator's deny lists.
//!
//! The matcher is the classic single-backtrack-point algorithm: on a mismatch it only returns to
//! the most recent `*`, so the work is at most `pattern × subject` steps, never exponential
//! (`*a*a*a*…b` against a long name finishes in microseconds). Patterns and subjects are capped at
//! [`MAX_GLOB_LEN`] characters: a longer pattern is an error, a longer subject never matches.

use crate::error::{Error, Result};

/// The longest pattern or subject, in characters.
pub const MAX_GLOB_LEN: usize = 1024;

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    chars: Vec<char>,
}

impl Glob {
    /// Compiles `pattern`; `M_TOO_LARGE` if longer than [`MAX_GLOB_LEN`] characters.
    pub fn new(pattern: &str) -> Result<Self> {
        let chars: Vec<char> = pattern.chars().take(MAX_GLOB_LEN + 1).collect();
        if chars.len() > MAX_GLOB_LEN {
            return Err(Error::too_large(format!(
                "a glob must not exceed {MAX_GLOB_LEN} characters"
            )));
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            chars,
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True if the whole of `subject` matches.
    pub fn matches(&self, subject: &str) -> bool {
        let s: Vec<char> = subject.chars().take(MAX_GLOB_LEN + 1).collect();
        if s.len() > MAX_GLOB_LEN {
            return false;
        }
        let p = &self.chars;
        let (mut pi, mut si) = (0usize, 0usize);
        // The most recent `*` (pattern index after it) and the subject index it is trying from.
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi + 1, si));
                    pi += 1;
                }
                Some(&c) if c == '?' || s.get(si) == Some(&c) => {
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
            .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
    }
}
