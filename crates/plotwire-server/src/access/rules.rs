//! The auth file (`--auth-file`, `docs/access.md`): which documents are private, which
//! keys exist and what each may do. Read once at start and again on SIGHUP.
//!
//! ```toml
//! share_secret = "…"            # signs share links (`plotwire keys init` writes one)
//! private = ["team/*", "board"] # private documents; `*` matches any characters
//!
//! [[keys]]
//! name = "trainer"
//! hash = "sha256:…"             # `plotwire keys add` prints the key once, stores this
//! scopes = ["write:runs/*", "read:*"]
//! limits = { requests = 200, points = 1000000, connections = 8 } # optional, in place of
//!                               # --limit-*; 0 turns one off for this key
//! ```

use std::path::Path;

use serde::Deserialize;
use wildmatch::WildMatch;

use super::keys::KeyHash;

/// Longest auth file, in bytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most keys an auth file may hold.
pub const MAX_KEYS: usize = 10_000;
/// Most scopes one key may hold.
pub const MAX_SCOPES: usize = 64;
/// Most `private` patterns.
pub const MAX_PRIVATE: usize = 1_000;
/// Longest pattern or key name, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;
/// Shortest `share_secret`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest share link life a server hands out unless the file says otherwise (365 days).
pub const DEFAULT_MAX_SHARE_SECONDS: u64 = 365 * 24 * 3600;

/// Why an auth file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read the auth file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("the auth file {path} is {size} bytes, more than {MAX_FILE_BYTES}")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The file is not valid TOML or has unknown or mistyped fields.
    #[error("the auth file {path} is not valid: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What the TOML parser said.
        message: String,
    },
    /// A value in the file is not acceptable.
    #[error("the auth file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
}

/// What a scope lets a key do to the documents its pattern matches. Each level includes
/// the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Views, embeds, read-backs, exports and events of private documents.
    Read,
    /// Streams, patches, replaces, clears, property sets; bokeh.client PUSH-DOC.
    Write,
    /// Creates, replaces and deletes documents, and makes share links for them.
    Publish,
}

/// One scope of a key.
#[derive(Debug, Clone)]
pub enum Scope {
    /// `read:PATTERN`, `write:PATTERN` or `publish:PATTERN`.
    Documents(Level, WildMatch),
    /// `admin`: everything, on every document, and the `/metrics` page.
    Admin,
    /// `metrics`: the `/metrics` page only.
    Metrics,
}

impl Scope {
    /// Parses `read:runs/*`, `write:*`, `publish:board`, `admin` or `metrics`.
    pub fn parse(text: &str) -> Result<Scope, String> {
        match text {
            "admin" => return Ok(Scope::Admin),
            "metrics" => return Ok(Scope::Metrics),
            _ => {}
        }
        let (level, pattern) = text.split_once(':').ok_or_else(|| {
            format!("scope {text:?} is not admin, metrics, read:PATTERN, write:PATTERN or publish:PATTERN")
        })?;
        let level = match level {
            "read" => Level::Read,
            "write" => Level::Write,
            "publish" => Level::Publish,
            other => {
                return Err(format!(
                    "scope {text:?}: {other:?} is not read, write or publish"
                ))
            }
        };
        Ok(Scope::Documents(level, pattern_of(pattern)?))
    }
}

fn pattern_of(pattern: &str) -> Result<WildMatch, String> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "a pattern has 1 to {MAX_PATTERN_BYTES} bytes, not {}",
            pattern.len()
        ));
    }
    Ok(WildMatch::new(pattern))
}

/// A key the file grants: its name (for logs and messages), its hash and its scopes.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key's name.
    pub name: String,
    /// The hash of the key's secret.
    pub hash: KeyHash,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Its own rate limits, in place of the flags' (`limits = { ... }`).
    pub limits: crate::limits::Overrides,
}

impl Key {
    /// Whether this key may act at `level` on the document `name`.
    pub fn allows(&self, level: Level, name: &str) -> bool {
        self.scopes.iter().any(|s| match s {
            Scope::Admin => true,
            Scope::Metrics => false,
            Scope::Documents(l, pattern) => *l >= level && pattern.matches(name),
        })
    }

    /// Whether this key may read `/metrics`.
    pub fn allows_metrics(&self) -> bool {
        self.scopes
            .iter()
            .any(|s| matches!(s, Scope::Admin | Scope::Metrics))
    }

    /// Whether this key may see every document (admin).
    pub fn is_admin(&self) -> bool {
        self.scopes.iter().any(|s| matches!(s, Scope::Admin))
    }
}

/// The rules of one auth file.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The secret that signs share links, if the file has one.
    pub share_secret: Option<Vec<u8>>,
    /// Names of private documents.
    pub private: Vec<WildMatch>,
    /// The keys.
    pub keys: Vec<Key>,
    /// Longest share link life, in seconds.
    pub max_share_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    name: String,
    hash: String,
    scopes: Vec<String>,
    #[serde(default)]
    limits: FileLimits,
}

/// `limits = { requests = N, points = N, connections = N }` of one key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    requests: Option<u32>,
    points: Option<u32>,
    connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    share_secret: Option<String>,
    #[serde(default)]
    private: Vec<String>,
    max_share_days: Option<u64>,
    #[serde(default)]
    keys: Vec<FileKey>,
}

impl Rules {
    /// Reads and checks the auth file at `path`.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let shown = path.display().to_string();
        let size = std::fs::metadata(path)
            .map_err(|source| RulesError::Read {
                path: shown.clone(),
                source,
            })?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(RulesError::TooLarge { path: shown, size });
        }
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: shown.clone(),
            source,
        })?;
        Rules::parse(&text).map_err(|e| match e {
            ParseError::Syntax(message) => RulesError::Syntax {
                path: shown,
                message,
            },
            ParseError::Invalid(message) => RulesError::Invalid {
                path: shown,
                message,
            },
        })
    }

    /// Parses the text of an auth file.
    pub fn parse(text: &str) -> Result<Rules, ParseError> {
        let file: File = toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let invalid = |m: String| ParseError::Invalid(m);
        let share_secret = match file.share_secret {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(invalid(format!(
                    "share_secret has {} bytes; it needs at least {MIN_SECRET_BYTES} (`plotwire keys init` writes a random one)",
                    s.len()
                )))
            }
            s => s.map(String::into_bytes),
        };
        if file.private.len() > MAX_PRIVATE {
            return Err(invalid(format!(
                "private has {} patterns, more than {MAX_PRIVATE}",
                file.private.len()
            )));
        }
        if !file.private.is_empty() && share_secret.is_none() {
            return Err(invalid(
                "private documents need share_secret: their pages carry signed read grants (`plotwire keys init` writes one)".to_owned(),
            ));
        }
        let private = file
            .private
            .iter()
            .map(|p| pattern_of(p).map_err(|e| invalid(format!("private: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if file.keys.len() > MAX_KEYS {
            return Err(invalid(format!(
                "{} keys, more than {MAX_KEYS}",
                file.keys.len()
            )));
        }
        let mut keys: Vec<Key> = Vec::with_capacity(file.keys.len());
        for (i, k) in file.keys.into_iter().enumerate() {
            let at = format!("keys[{i}] ({:?})", k.name);
            if k.name.is_empty() || k.name.len() > MAX_PATTERN_BYTES {
                return Err(invalid(format!(
                    "{at}: a key name has 1 to {MAX_PATTERN_BYTES} bytes"
                )));
            }
            if keys.iter().any(|other| other.name == k.name) {
                return Err(invalid(format!("{at}: two keys have this name")));
            }
            let hash = KeyHash::parse(&k.hash).map_err(|e| invalid(format!("{at}: {e}")))?;
            if keys.iter().any(|other| other.hash == hash) {
                return Err(invalid(format!("{at}: the same key is listed twice")));
            }
            if k.scopes.is_empty() || k.scopes.len() > MAX_SCOPES {
                return Err(invalid(format!(
                    "{at}: a key has 1 to {MAX_SCOPES} scopes, not {}",
                    k.scopes.len()
                )));
            }
            let scopes = k
                .scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(|e| invalid(format!("{at}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            keys.push(Key {
                name: k.name,
                hash,
                scopes,
                limits: crate::limits::Overrides {
                    requests_per_second: k.limits.requests,
                    points_per_second: k.limits.points,
                    connections: k.limits.connections,
                },
            });
        }
        let max_share_seconds = match file.max_share_days {
            None => DEFAULT_MAX_SHARE_SECONDS,
            Some(0) => return Err(invalid("max_share_days must be at least 1".to_owned())),
            Some(d) => d.saturating_mul(24 * 3600),
        };
        Ok(Rules {
            share_secret,
            private,
            keys,
            max_share_seconds,
        })
    }

    /// Whether the document `name` is private.
    pub fn is_private(&self, name: &str) -> bool {
        self.private.iter().any(|p| p.matches(name))
    }

    /// The key whose secret is `presented`, compared with every key in constant time.
    pub fn key(&self, presented: &str) -> Option<&Key> {
        let hash = KeyHash::of(presented);
        let mut found = None;
        for key in &self.keys {
            if key.hash.ct_eq(&hash) {
                found = Some(key);
            }
        }
        found
    }
}

/// Why the text of an auth file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not TOML, or unknown or mistyped fields.
    #[error("{0}")]
    Syntax(String),
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(keys: &str) -> String {
        format!(
            "share_secret = \"{}\"\nprivate = [\"team/*\"]\n{keys}",
            "s".repeat(MIN_SECRET_BYTES)
        )
    }

    #[test]
    fn scopes_nest_and_patterns_match() {
        let hash = KeyHash::of("pwk_a").to_string();
        let rules = Rules::parse(&file(&format!(
            "[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"write:runs/*\"]\n"
        )))
        .unwrap();
        let key = rules.key("pwk_a").unwrap();
        assert!(key.allows(Level::Read, "runs/x"));
        assert!(key.allows(Level::Write, "runs/x/y"));
        assert!(!key.allows(Level::Publish, "runs/x"));
        assert!(!key.allows(Level::Read, "other"));
        assert!(!key.allows_metrics());
        assert!(rules.key("pwk_b").is_none());
        assert!(rules.is_private("team/a"));
        assert!(!rules.is_private("teams"));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let hash = KeyHash::of("k").to_string();
        let cases = [
            ("share_secret = \"short\"", "share_secret"),
            ("bogus = 1", "bogus"),
            ("[[keys]]\nname = \"a\"\nhash = \"md5:00\"\nscopes = [\"admin\"]", "sha256"),
            (
                &format!("[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"root\"]"),
                "root",
            ),
            (
                &format!("[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = []"),
                "1 to",
            ),
            (
                &format!(
                    "[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"admin\"]\n[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"admin\"]"
                ),
                "two keys",
            ),
            (
                &format!("[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"admin\"]\nlimits = {{ rows = 5 }}"),
                "rows",
            ),
            (
                &format!("[[keys]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"admin\"]\nlimits = {{ points = -1 }}"),
                "points",
            ),
            ("private = [\"a\"]", "share_secret"),
            ("max_share_days = 0", "max_share_days"),
            (
                &format!("share_secret = \"{}\"\nprivate = [\"\"]", "s".repeat(32)),
                "pattern",
            ),
        ];
        for (text, needle) in cases {
            let err = Rules::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }
}
