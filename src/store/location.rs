//! Where a store lives: an SQLite file (the embedded default) or a PostgreSQL database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest connection string accepted, in bytes (a real one is well under 1 KiB).
const MAX_CONNECTION_STRING_BYTES: usize = 8 * 1024;

/// The libpq keywords that mark `key=value` text as a connection string rather than a path.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "connect_timeout",
    "application_name",
    "options",
    "sslmode",
    "target_session_attrs",
];

/// The store to open: [`Location::parse`] reads it from text, a [`Path`] is always SQLite.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// servership's own SQLite file (never Synapse's).
    Sqlite(PathBuf),
    /// A PostgreSQL database, as a libpq connection string (URL or `key=value` form).
    Postgres(PostgresUrl),
}

/// A validated PostgreSQL connection string. Its `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    text: String,
}

impl PostgresUrl {
    /// Validates `text` as a libpq connection string.
    pub fn new(text: &str) -> Result<PostgresUrl> {
        if text.len() > MAX_CONNECTION_STRING_BYTES {
            return Err(Error::invalid_param(format!(
                "a PostgreSQL connection string is at most {MAX_CONNECTION_STRING_BYTES} bytes"
            )));
        }
        if text.contains('\0') {
            return Err(Error::invalid_param(
                "a PostgreSQL connection string must not contain a NUL byte",
            ));
        }
        // The parser's messages name the bad option, never a value.
        postgres::Config::from_str(text).map_err(|e| {
            Error::invalid_param(format!("not a valid PostgreSQL connection string: {e}"))
        })?;
        Ok(PostgresUrl {
            text: text.to_owned(),
        })
    }

    /// The connection string as given (it may hold a password: do not log it).
    pub fn expose(&self) -> &str {
        &self.text
    }

    pub(crate) fn config(&self) -> Result<postgres::Config> {
        postgres::Config::from_str(&self.text).map_err(|e| {
            Error::invalid_param(format!("not a valid PostgreSQL connection string: {e}"))
        })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(config) = self.config() else {
            return f.write_str("postgresql://(invalid)");
        };
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        write!(f, "postgresql://")?;
        if let Some(user) = config.get_user() {
            write!(f, "{user}@")?;
        }
        write!(f, "{}", hosts.join(","))?;
        if !ports.is_empty() {
            write!(f, ":{}", ports.join(","))?;
        }
        if let Some(db) = config.get_dbname() {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

impl Location {
    /// Reads a store location from text: a `postgresql://` or `postgres://` URL, or libpq
    /// `key=value` pairs starting with a known keyword (`host=… dbname=…`), is PostgreSQL;
    /// anything else is the path of an SQLite file. An empty text is `M_INVALID_PARAM`.
    pub fn parse(text: &str) -> Result<Location> {
        if text.is_empty() {
            return Err(Error::invalid_param("the store location must not be empty"));
        }
        if looks_like_postgres(text) {
            return PostgresUrl::new(text).map(Location::Postgres);
        }
        if text.contains('\0') {
            return Err(Error::invalid_param("path must not contain a NUL byte"));
        }
        Ok(Location::Sqlite(PathBuf::from(text)))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

/// Whether `text` is a PostgreSQL connection string rather than a file path.
fn looks_like_postgres(text: &str) -> bool {
    if text.starts_with("postgresql://") || text.starts_with("postgres://") {
        return true;
    }
    let first = text.split_whitespace().next().unwrap_or("");
    match first.split_once('=') {
        Some((key, _)) => LIBPQ_KEYWORDS.contains(&key.trim()),
        None => false,
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            Location::Postgres(url) => write!(f, "Postgres({url})"),
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Sqlite(path.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Sqlite(path)
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::Sqlite(path.clone())
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_key_values_and_paths() {
        for pg in [
            "postgresql://u:secret@127.0.0.1:5432/db",
            "postgres://localhost/db",
            "host=127.0.0.1 port=5432 dbname=db user=u password=secret",
            "  dbname=db",
        ] {
            let loc = Location::parse(pg).map_err(|e| e.to_string());
            assert!(matches!(loc, Ok(Location::Postgres(_))), "{pg:?}: {loc:?}");
            assert!(!format!("{:?}", loc).contains("secret"));
        }
        for path in ["store.db", "/var/lib/x=y.db", "./host", "a b=c"] {
            assert_eq!(
                Location::parse(path).ok(),
                Some(Location::Sqlite(PathBuf::from(path)))
            );
        }
        assert!(Location::parse("").is_err());
        assert!(Location::parse("a\0b").is_err());
        assert!(Location::parse("postgresql://h/db?port=notanumber").is_err());
        assert!(Location::parse(&format!("host={}", "h".repeat(10_000))).is_err());
    }

    #[test]
    fn display_hides_the_password() {
        let loc = Location::parse("postgresql://alice:hunter2@db.example:6543/synapse");
        let shown = loc.map(|l| l.to_string()).unwrap_or_default();
        assert_eq!(shown, "postgresql://alice@db.example:6543/synapse");
    }
}
