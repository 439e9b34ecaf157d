//! Access control (`--auth-file`, `docs/access.md`): off unless an auth file is given.
//!
//! With it, REST writes, publishes and bokeh.client PUSH-DOC need an API key whose scope
//! covers the document; private documents need a key or a signed, expiring read grant
//! (a share link) for every page, websocket, embed, export and read-back. Public
//! documents need nothing to be viewed or read. Every denial is 401 (no valid
//! credential) or 403 (a valid one that does not cover the request), decided from the
//! name alone, before anything is looked up or changed: so it never says whether the
//! document exists.
//!
//! Keys travel in `Authorization: Bearer <key>`; a bokeh.client producer, which cannot
//! set headers, passes `arguments={"plotwire_key": key}`, which reaches the websocket
//! request as a query parameter. Grants travel as `?grant=` and, inside a private
//! page's session token, as the `plotwire_grant` claim. Neither is ever logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};

use crate::error::HttpError;

pub mod grant;
pub mod keys;
pub mod rules;

pub use grant::{GrantError, GRANT_PARAM};
pub use rules::{Level, Rules, RulesError};

/// How long the grant in an export of a private document lasts when it was asked for
/// with a key (7 days); asked for with a share link, it lasts as long as that link.
pub const EXPORT_GRANT_SECONDS: i64 = 7 * 24 * 3600;

/// The websocket query parameter a bokeh.client producer passes its key in.
pub const KEY_PARAM: &str = "plotwire_key";

/// The session-token claim a private document's page carries its grant in.
pub const TOKEN_GRANT_CLAIM: &str = "plotwire_grant";

/// Longest credential read from a request, in bytes; longer ones are refused unread.
pub const MAX_CREDENTIAL_BYTES: usize = 256;

/// How long the grant in a page's token lasts when the page was opened with a key
/// rather than a share link (24 hours): BokehJS reconnects with its page's token.
pub const KEY_PAGE_GRANT_SECONDS: i64 = 24 * 3600;

/// The access rules in force, reloaded from their file on request (SIGHUP).
pub struct Access {
    path: PathBuf,
    rules: RwLock<Arc<Rules>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("path", &self.path).finish()
    }
}

impl Access {
    /// Reads the auth file at `path`.
    pub fn open(path: &Path) -> Result<Access, RulesError> {
        let rules = Rules::load(path)?;
        Ok(Access {
            path: path.to_owned(),
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    /// The auth file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again. On an error the rules in force stay as they were.
    pub fn reload(&self) -> Result<(), RulesError> {
        let rules = Arc::new(Rules::load(&self.path)?);
        let keys = rules.keys.len();
        let private = rules.private.len();
        match self.rules.write() {
            Ok(mut current) => *current = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
        tracing::info!(path = %self.path.display(), keys, private, "auth file reloaded");
        Ok(())
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Rules> {
        match self.rules.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// What a request presented: a key, a grant, both or neither.
#[derive(Default, Clone)]
pub struct Credentials {
    key: Option<String>,
    grant: Option<String>,
    malformed: Option<&'static str>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key.as_ref().map(|_| "…"))
            .field("grant", &self.grant.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Credentials {
    /// The key of an `Authorization: Bearer` header and the grant of a `grant` query
    /// parameter.
    pub fn of_request(headers: &HeaderMap, query: &HashMap<String, String>) -> Credentials {
        let mut c = Credentials::default();
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            match value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
                .map(str::trim)
            {
                Some(key) if !key.is_empty() && key.len() <= MAX_CREDENTIAL_BYTES => {
                    c.key = Some(key.to_owned())
                }
                _ => c.malformed = Some("Authorization must be `Bearer <key>`"),
            }
        }
        if let Some(grant) = query.get(GRANT_PARAM) {
            c.set_grant(grant);
        }
        c
    }

    /// As [`Credentials::of_request`], plus the key of a `plotwire_key` query parameter
    /// (how bokeh.client passes one) for a websocket request.
    pub fn of_websocket(headers: &HeaderMap, query: &HashMap<String, String>) -> Credentials {
        let mut c = Credentials::of_request(headers, query);
        if c.key.is_none() {
            if let Some(key) = query.get(KEY_PARAM) {
                if key.is_empty() || key.len() > MAX_CREDENTIAL_BYTES {
                    c.malformed = Some("plotwire_key is empty or too long");
                } else {
                    c.key = Some(key.clone());
                }
            }
        }
        c
    }

    /// Adds a grant (from a page's session token), unless one was given already.
    pub fn set_grant(&mut self, grant: &str) {
        if self.grant.is_some() {
            return;
        }
        if grant.is_empty() || grant.len() > MAX_CREDENTIAL_BYTES {
            self.malformed = Some("the grant is empty or too long");
        } else {
            self.grant = Some(grant.to_owned());
        }
    }

    /// Whether a key was presented.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }
}

/// How a request was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Access control is off.
    Open,
    /// A public document, read without credentials.
    Public,
    /// The key of this name.
    Key(String),
    /// A read grant valid until this time (seconds since the Unix epoch).
    Grant(i64),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Nothing was presented, and something is needed.
    #[error("{0}")]
    Missing(&'static str),
    /// A credential that does not parse.
    #[error("{0}")]
    Malformed(&'static str),
    /// A key that is not in the auth file.
    #[error("the key is not valid")]
    BadKey,
    /// A grant that is not valid or expired.
    #[error(transparent)]
    BadGrant(GrantError),
    /// A valid key or grant that does not cover the request.
    #[error("{0}")]
    Scope(String),
}

impl Denied {
    /// The status of this denial: 403 for a valid credential that falls short, 401
    /// otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Denied::Scope(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<Denied> for HttpError {
    fn from(d: Denied) -> HttpError {
        crate::warn_limited!(status = %d.status(), reason = %d, "request denied");
        HttpError::new(d.status(), d.to_string())
    }
}

/// The read grant a private page's session token carries, if it carries one. The
/// token's extra payload is inflated only here, for private documents.
pub fn token_grant(token: &str) -> Option<String> {
    let payload = plotwire_protocol::token::decode_token(token).ok()?;
    payload
        .extra
        .get(TOKEN_GRANT_CLAIM)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn verb(level: Level) -> &'static str {
    match level {
        Level::Read => "read",
        Level::Write => "write to",
        Level::Publish => "publish",
    }
}

impl Rules {
    /// Decides whether `creds` may act at `level` on the document `name` at `now`.
    pub fn authorize(
        &self,
        creds: &Credentials,
        level: Level,
        name: &str,
        now: i64,
    ) -> Result<Allowed, Denied> {
        if let Some(m) = creds.malformed {
            return Err(Denied::Malformed(m));
        }
        let public_read = level == Level::Read && !self.is_private(name);
        if let Some(presented) = &creds.key {
            let key = self.key(presented).ok_or(Denied::BadKey)?;
            if key.allows(level, name) {
                return Ok(Allowed::Key(key.name.clone()));
            }
            if public_read {
                return Ok(Allowed::Public);
            }
            return Err(Denied::Scope(format!(
                "the key {:?} may not {} {name:?}",
                key.name,
                verb(level)
            )));
        }
        if public_read {
            return Ok(Allowed::Public);
        }
        if let Some(presented) = &creds.grant {
            let secret = self
                .share_secret
                .as_deref()
                .ok_or(Denied::BadGrant(GrantError::Invalid))?;
            let expiry = grant::verify(secret, name, presented, now).map_err(Denied::BadGrant)?;
            if level == Level::Read {
                return Ok(Allowed::Grant(expiry));
            }
            return Err(Denied::Scope(format!(
                "a share link only lets its holder read; to {} {name:?} send a key",
                verb(level)
            )));
        }
        Err(Denied::Missing(match level {
            Level::Read => {
                "this needs a key (Authorization: Bearer <key>) or a share link (?grant=)"
            }
            _ => "this needs a key: send Authorization: Bearer <key>",
        }))
    }

    /// Decides whether `creds` may read `/metrics`.
    pub fn authorize_metrics(&self, creds: &Credentials) -> Result<Allowed, Denied> {
        if let Some(m) = creds.malformed {
            return Err(Denied::Malformed(m));
        }
        let Some(presented) = &creds.key else {
            return Err(Denied::Missing(
                "/metrics needs a key with the metrics scope: send Authorization: Bearer <key>",
            ));
        };
        let key = self.key(presented).ok_or(Denied::BadKey)?;
        if key.allows_metrics() {
            Ok(Allowed::Key(key.name.clone()))
        } else {
            Err(Denied::Scope(format!(
                "the key {:?} has neither the metrics nor the admin scope",
                key.name
            )))
        }
    }

    /// The valid key `creds` presents, if it presents one.
    pub fn key_of(&self, creds: &Credentials) -> Option<&rules::Key> {
        creds.key.as_deref().and_then(|k| self.key(k))
    }

    /// Refuses a malformed credential or a key that is not in the file, whatever the
    /// request: for answers that list what a caller may see.
    pub fn check_presented(&self, creds: &Credentials) -> Result<(), Denied> {
        if let Some(m) = creds.malformed {
            return Err(Denied::Malformed(m));
        }
        match &creds.key {
            Some(k) if self.key(k).is_none() => Err(Denied::BadKey),
            _ => Ok(()),
        }
    }

    /// The grant that copies and pages of the private document `name`, let through as
    /// `allowed`, carry for their own reads: the caller's grant again, or for a key a
    /// new one of `lifetime` seconds. `None` for a public document.
    pub fn carried_grant(&self, allowed: &Allowed, name: &str, lifetime: i64) -> Option<String> {
        if !self.is_private(name) {
            return None;
        }
        let expiry = match allowed {
            Allowed::Grant(expiry) => *expiry,
            Allowed::Key(_) => now().saturating_add(lifetime),
            Allowed::Open | Allowed::Public => return None,
        };
        self.sign_grant(name, expiry)
    }

    /// A grant to read `name` until `expiry`, if the rules can sign one.
    pub fn sign_grant(&self, name: &str, expiry: i64) -> Option<String> {
        self.share_secret
            .as_deref()
            .map(|secret| grant::sign(secret, name, expiry))
    }
}

/// Whether `creds` may act at `level` on `name` under `access` (everything may when
/// access control is off).
pub fn authorize(
    access: Option<&Access>,
    creds: &Credentials,
    level: Level,
    name: &str,
) -> Result<Allowed, HttpError> {
    match access {
        None => Ok(Allowed::Open),
        Some(a) => Ok(a.rules().authorize(creds, level, name, now())?),
    }
}

#[cfg(test)]
mod tests {
    use super::keys::KeyHash;
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn rules() -> Rules {
        let key = |name: &str, scopes: &str| {
            format!(
                "[[keys]]\nname = \"{name}\"\nhash = \"{}\"\nscopes = [{scopes}]\n",
                KeyHash::of(&format!("pwk_{name}"))
            )
        };
        let text = format!(
            "share_secret = \"{SECRET}\"\nprivate = [\"team/*\"]\n{}{}{}",
            key("reader", "\"read:team/*\""),
            key("writer", "\"write:runs/*\""),
            key("admin", "\"admin\""),
        );
        Rules::parse(&text).unwrap()
    }

    fn with_key(key: &str) -> Credentials {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        Credentials::of_request(&h, &HashMap::new())
    }

    fn with_grant(grant: &str) -> Credentials {
        let q = HashMap::from([(GRANT_PARAM.to_owned(), grant.to_owned())]);
        Credentials::of_request(&HeaderMap::new(), &q)
    }

    type Case<'a> = (
        &'a str,
        Credentials,
        Level,
        &'a str,
        Result<Allowed, StatusCode>,
    );

    #[test]
    fn the_decision_table() {
        let r = rules();
        let none = Credentials::default();
        let grant = grant::sign(SECRET.as_bytes(), "team/board", 100);
        let other_grant = grant::sign(SECRET.as_bytes(), "team/other", 100);
        use Level::*;
        let cases: Vec<Case> = vec![
            (
                "public read, nothing",
                none.clone(),
                Read,
                "runs/a",
                Ok(Allowed::Public),
            ),
            (
                "public write, nothing",
                none.clone(),
                Write,
                "runs/a",
                Err(StatusCode::UNAUTHORIZED),
            ),
            (
                "private read, nothing",
                none.clone(),
                Read,
                "team/board",
                Err(StatusCode::UNAUTHORIZED),
            ),
            (
                "wrong key",
                with_key("pwk_nobody"),
                Read,
                "runs/a",
                Err(StatusCode::UNAUTHORIZED),
            ),
            (
                "writer writes",
                with_key("pwk_writer"),
                Write,
                "runs/a",
                Ok(Allowed::Key("writer".into())),
            ),
            (
                "writer reads its own",
                with_key("pwk_writer"),
                Read,
                "runs/a",
                Ok(Allowed::Key("writer".into())),
            ),
            (
                "writer cannot publish",
                with_key("pwk_writer"),
                Publish,
                "runs/a",
                Err(StatusCode::FORBIDDEN),
            ),
            (
                "writer elsewhere",
                with_key("pwk_writer"),
                Write,
                "team/x",
                Err(StatusCode::FORBIDDEN),
            ),
            (
                "writer reads public",
                with_key("pwk_writer"),
                Read,
                "other",
                Ok(Allowed::Public),
            ),
            (
                "writer reads private",
                with_key("pwk_writer"),
                Read,
                "team/x",
                Err(StatusCode::FORBIDDEN),
            ),
            (
                "reader reads private",
                with_key("pwk_reader"),
                Read,
                "team/x",
                Ok(Allowed::Key("reader".into())),
            ),
            (
                "reader cannot write",
                with_key("pwk_reader"),
                Write,
                "team/x",
                Err(StatusCode::FORBIDDEN),
            ),
            (
                "admin publishes",
                with_key("pwk_admin"),
                Publish,
                "team/x",
                Ok(Allowed::Key("admin".into())),
            ),
            (
                "grant reads",
                with_grant(&grant),
                Read,
                "team/board",
                Ok(Allowed::Grant(100)),
            ),
            (
                "grant for another",
                with_grant(&other_grant),
                Read,
                "team/board",
                Err(StatusCode::UNAUTHORIZED),
            ),
            (
                "grant cannot write",
                with_grant(&grant),
                Write,
                "team/board",
                Err(StatusCode::FORBIDDEN),
            ),
            (
                "tampered grant",
                with_grant(&grant.replace("g1.100", "g1.999")),
                Read,
                "team/board",
                Err(StatusCode::UNAUTHORIZED),
            ),
        ];
        for (what, creds, level, name, want) in cases {
            let got = r.authorize(&creds, level, name, 50).map_err(|d| d.status());
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(
            r.authorize(&with_grant(&grant), Read, "team/board", 100),
            Err(Denied::BadGrant(GrantError::Expired(100)))
        );
    }

    #[test]
    fn malformed_headers_and_metrics() {
        let r = rules();
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        let creds = Credentials::of_request(&h, &HashMap::new());
        assert_eq!(
            r.authorize(&creds, Level::Read, "runs/a", 0)
                .map_err(|d| d.status()),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert!(r.authorize_metrics(&with_key("pwk_admin")).is_ok());
        assert_eq!(
            r.authorize_metrics(&with_key("pwk_writer"))
                .map_err(|d| d.status()),
            Err(StatusCode::FORBIDDEN)
        );
        assert!(format!("{:?}", with_key("pwk_admin"))
            .find("pwk_admin")
            .is_none());
        let q = HashMap::from([(KEY_PARAM.to_owned(), "pwk_writer".to_owned())]);
        let ws = Credentials::of_websocket(&HeaderMap::new(), &q);
        assert!(r.authorize(&ws, Level::Write, "runs/a", 0).is_ok());
        assert!(Credentials::of_request(&HeaderMap::new(), &q).key.is_none());
    }
}
