//! The scheme, host and client address of a request, as the client saw them: from the
//! TCP peer and, behind a trusted reverse proxy (`--use-xheaders`), from the headers the
//! proxy adds (`X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP`
//! and RFC 7239 `Forwarded`).
//!
//! The headers are believed only from a peer in `--trusted-proxies` (default: loopback,
//! `127.0.0.0/8` and `::1`); from any other peer they are ignored, so a client cannot
//! claim another address by sending them itself. The client address is the right-most
//! address of the proxy chain that is not a trusted proxy: each proxy appends the
//! address it got the request from, so that is the last hop no trusted proxy vouches
//! for. A value that does not parse is skipped (logged at debug level, rate-limited),
//! never an error: the request goes on with what the peer gave.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

/// Most hops of an `X-Forwarded-For` or `Forwarded` chain looked at, from the right;
/// the ones further left are not read.
pub const MAX_HOPS: usize = 32;

/// Longest forwarded host accepted, in bytes (a DNS name is at most 253, plus a port).
pub const MAX_HOST_BYTES: usize = 260;

/// `tracing::debug!` with a per-call-site rate limit, for bad forwarding headers: a
/// client controls how often it sends them.
macro_rules! debug_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log::RateLimit = $crate::log::RateLimit::new();
        if let Some(suppressed) = LIMIT.allow() {
            tracing::debug!(suppressed, $($arg)+);
        }
    }};
}

/// A network of trusted proxies: an address and a prefix length (`10.0.0.0/8`,
/// `::1/128`); a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxies` entry that is not an address or a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR network (such as 10.0.0.0/8 or fd00::/8)")]
pub struct ProxyNetError(String);

impl ProxyNet {
    /// The networks trusted when none are configured: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> Vec<ProxyNet> {
        vec![
            ProxyNet {
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            ProxyNet {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyNet {
    type Err = ProxyNetError;

    fn from_str(s: &str) -> Result<ProxyNet, ProxyNetError> {
        let bad = || ProxyNetError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let most = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= most)
                .ok_or_else(bad)?,
            None => most,
        };
        Ok(ProxyNet { addr, prefix })
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether and whom to believe about forwarding (`--use-xheaders`, `--trusted-proxies`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    /// Read the forwarding headers at all (Bokeh's `--use-xheaders`).
    pub use_xheaders: bool,
    /// The peers whose forwarding headers are believed; empty means [`ProxyNet::loopback`].
    pub trusted_proxies: Vec<ProxyNet>,
}

impl Forwarding {
    /// Whether `ip` is a trusted proxy.
    fn trusts(&self, ip: IpAddr) -> bool {
        if self.trusted_proxies.is_empty() {
            ProxyNet::loopback().iter().any(|n| n.contains(ip))
        } else {
            self.trusted_proxies.iter().any(|n| n.contains(ip))
        }
    }
}

/// The scheme a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http` (and `ws`).
    Http,
    /// `https` (and `wss`).
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// A request as its client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    /// The scheme the client used.
    pub scheme: Scheme,
    /// The host (and port) the client addressed, lowercased; `None` without a Host header.
    pub host: Option<String>,
    /// The client's address; `None` when the server does not know its peer (a host app
    /// serving the router without connect info) and no trusted proxy said.
    pub client: Option<IpAddr>,
    /// Whether the request came through a trusted proxy with forwarding headers read.
    pub proxied: bool,
}

/// The TCP peer of a request, from axum's `ConnectInfo<SocketAddr>` (set by
/// [`crate::serve`]); `None` when the router is served without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub Option<SocketAddr>);

impl Peer {
    /// The peer recorded in a request's extensions.
    pub fn of(extensions: &axum::http::Extensions) -> Peer {
        Peer(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer::of(&parts.extensions))
    }
}

/// The scheme, host and client address of a request from its peer, its headers and
/// the forwarding settings (see the module docs for the rules).
pub fn client_view(peer: Option<SocketAddr>, headers: &HeaderMap, fwd: &Forwarding) -> ClientView {
    let host = header_str(headers, header::HOST.as_str()).and_then(valid_host);
    let direct = ClientView {
        scheme: Scheme::Http,
        host,
        client: peer.map(|p| p.ip().to_canonical()),
        proxied: false,
    };
    let Some(peer) = peer.map(|p| p.ip().to_canonical()) else {
        return direct;
    };
    if !fwd.use_xheaders || !fwd.trusts(peer) {
        return direct;
    }
    let rfc = header_list(headers, "forwarded")
        .map(|v| parse_forwarded(&v))
        .unwrap_or_default();
    let client = header_list(headers, "x-forwarded-for")
        .and_then(|xff| chain_client(peer, xff.split(',').map(str::trim), fwd))
        .or_else(|| {
            (!rfc.hops.is_empty())
                .then(|| chain_client(peer, rfc.hops.iter().map(String::as_str), fwd))
                .flatten()
        })
        .or_else(|| header_str(headers, "x-real-ip").and_then(|v| parse_hop(v.trim())))
        .unwrap_or(peer);
    let scheme = header_list(headers, "x-forwarded-proto")
        .and_then(|v| last_item(&v, "X-Forwarded-Proto").and_then(scheme_of))
        .or_else(|| rfc.proto.as_deref().and_then(scheme_of))
        .unwrap_or(Scheme::Http);
    let host = header_list(headers, "x-forwarded-host")
        .and_then(|v| last_item(&v, "X-Forwarded-Host").and_then(valid_host))
        .or_else(|| rfc.host.as_deref().and_then(valid_host))
        .or(direct.host);
    ClientView {
        scheme,
        host,
        client: Some(client),
        proxied: true,
    }
}

/// A header's value as text, if it has one.
fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?;
    match value.to_str() {
        Ok(v) => Some(v),
        Err(_) => {
            debug_limited!(header = name, "forwarding header is not text: ignored");
            None
        }
    }
}

/// Every value of a list header, in order, joined with commas (two `X-Forwarded-For`
/// headers are one list); `None` without one, or if one is not text.
fn header_list(headers: &HeaderMap, name: &'static str) -> Option<String> {
    let mut joined: Option<String> = None;
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            debug_limited!(header = name, "forwarding header is not text: ignored");
            return None;
        };
        match &mut joined {
            Some(j) => {
                j.push(',');
                j.push_str(text);
            }
            None => joined = Some(text.to_owned()),
        }
    }
    joined
}

/// The right-most comma-separated item of a header (the one the nearest proxy set).
fn last_item<'v>(value: &'v str, name: &'static str) -> Option<&'v str> {
    let item = value
        .rsplit(',')
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if item.is_none() {
        debug_limited!(header = name, "empty forwarding header: ignored");
    }
    item
}

fn scheme_of(s: &str) -> Option<Scheme> {
    let scheme = Scheme::parse(s);
    if scheme.is_none() {
        debug_limited!(
            value = s,
            "forwarded scheme is neither http nor https: ignored"
        );
    }
    scheme
}

/// `host` or `host:port` made of the characters a host may hold, lowercased.
fn valid_host(s: &str) -> Option<String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= MAX_HOST_BYTES
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        });
    if !ok {
        debug_limited!(value = s, "forwarded host is not a host[:port]: ignored");
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// The right-most hop of `peer` preceded by `hops` that is not a trusted proxy. The walk
/// stops at a hop that does not parse (what is left of it cannot be believed); `None`
/// if no untrusted hop was found before that.
fn chain_client<'a>(
    peer: IpAddr,
    hops: impl DoubleEndedIterator<Item = &'a str>,
    fwd: &Forwarding,
) -> Option<IpAddr> {
    let mut last_trusted = peer;
    for hop in hops.rev().take(MAX_HOPS) {
        let ip = parse_hop(hop)?;
        if !fwd.trusts(ip) {
            return Some(ip);
        }
        last_trusted = ip;
    }
    // Every hop is a trusted proxy: the left-most one is as far as the chain goes.
    Some(last_trusted)
}

/// An address of a proxy chain: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:80`, optionally in double quotes (RFC 7239).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        });
    if ip.is_none() {
        debug_limited!(value = hop, "forwarded address does not parse: ignored");
    }
    ip.map(|ip| ip.to_canonical())
}

/// What an RFC 7239 `Forwarded` header says.
#[derive(Debug, Default)]
struct Rfc7239 {
    /// The `for=` of every element, left to right (at most [`MAX_HOPS`], the right-most).
    hops: Vec<String>,
    /// The `proto=` of the right-most element that has one.
    proto: Option<String>,
    /// The `host=` of the right-most element that has one.
    host: Option<String>,
}

fn parse_forwarded(value: &str) -> Rfc7239 {
    let mut out = Rfc7239::default();
    let elements: Vec<&str> = value.rsplit(',').take(MAX_HOPS).collect();
    for element in elements.into_iter().rev() {
        let mut hop = None;
        for pair in element.split(';') {
            let Some((key, val)) = pair.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"').to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "for" => hop = Some(val),
                "proto" => out.proto = Some(val),
                "host" => out.host = Some(val),
                _ => {}
            }
        }
        // An element without `for=` breaks the chain as an address that does not parse.
        out.hops.push(hop.unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn on() -> Forwarding {
        Forwarding {
            use_xheaders: true,
            trusted_proxies: Vec::new(),
        }
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    const PROXIED: &[(&str, &str)] = &[
        ("host", "127.0.0.1:5006"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "plots.example.com"),
    ];

    #[test]
    fn trusted_proxy_headers_give_scheme_host_and_client() {
        let v = client_view(peer("127.0.0.1:40000"), &headers(PROXIED), &on());
        assert_eq!(v.scheme, Scheme::Https);
        assert_eq!(v.host.as_deref(), Some("plots.example.com"));
        assert_eq!(v.client, ip("203.0.113.7"));
        assert!(v.proxied);
    }

    #[test]
    fn headers_from_an_untrusted_peer_or_without_xheaders_are_ignored() {
        let spoofed = client_view(peer("198.51.100.9:5555"), &headers(PROXIED), &on());
        assert_eq!(spoofed.scheme, Scheme::Http);
        assert_eq!(spoofed.host.as_deref(), Some("127.0.0.1:5006"));
        assert_eq!(spoofed.client, ip("198.51.100.9"));
        assert!(!spoofed.proxied);
        let off = client_view(
            peer("127.0.0.1:40000"),
            &headers(PROXIED),
            &Forwarding::default(),
        );
        assert_eq!(off.client, ip("127.0.0.1"));
        assert_eq!(off.host.as_deref(), Some("127.0.0.1:5006"));
        let no_peer = client_view(None, &headers(PROXIED), &on());
        assert_eq!(no_peer.client, None);
        assert_eq!(no_peer.host.as_deref(), Some("127.0.0.1:5006"));
    }

    #[test]
    fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
        let fwd = Forwarding {
            use_xheaders: true,
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
        };
        // A client put a made-up address in front; the proxies appended the real one.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        let v = client_view(peer("10.9.9.9:1"), &h, &fwd);
        assert_eq!(v.client, ip("203.0.113.7"));
        // Only trusted hops: the left-most.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(
            client_view(peer("10.9.9.9:1"), &h, &fwd).client,
            ip("10.0.0.5")
        );
        // 127.0.0.1 is not trusted with an explicit list that leaves it out.
        let v = client_view(peer("127.0.0.1:1"), &headers(PROXIED), &fwd);
        assert!(!v.proxied);
        // Two headers of the same name count as one list.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.8"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        let v = client_view(peer("10.9.9.9:1"), &h, &fwd);
        assert_eq!(v.client, ip("203.0.113.8"));
    }

    #[test]
    fn ipv6_peers_hops_and_ports() {
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:4711, 198.51.100.1:80")]);
        assert_eq!(
            client_view(peer("[::1]:9"), &h, &on()).client,
            ip("198.51.100.1")
        );
        let h = headers(&[("x-forwarded-for", "2001:db8::7")]);
        assert_eq!(
            client_view(peer("[::1]:9"), &h, &on()).client,
            ip("2001:db8::7")
        );
        let h = headers(&[("x-forwarded-for", "[2001:db8::8]")]);
        assert_eq!(
            client_view(peer("[::1]:9"), &h, &on()).client,
            ip("2001:db8::8")
        );
        // A v4-mapped loopback peer (a server on [::]) is loopback.
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        let v = client_view(peer("[::ffff:127.0.0.1]:9"), &h, &on());
        assert_eq!(v.client, ip("192.0.2.1"));
        let net: ProxyNet = "fd00::/8".parse().unwrap();
        assert!(net.contains("fd12::1".parse().unwrap()));
        assert!(!net.contains("fe80::1".parse().unwrap()));
        assert!(!net.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn garbage_is_ignored_and_never_fails_the_request() {
        // A garbage hop stops the walk: what is right of it still counts.
        let h = headers(&[("x-forwarded-for", "not-an-ip, 203.0.113.7")]);
        assert_eq!(
            client_view(peer("127.0.0.1:1"), &h, &on()).client,
            ip("203.0.113.7")
        );
        // Garbage nearest the proxy: fall back to X-Real-IP, then the peer.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7, ???"),
            ("x-real-ip", "192.0.2.5"),
        ]);
        assert_eq!(
            client_view(peer("127.0.0.1:1"), &h, &on()).client,
            ip("192.0.2.5")
        );
        let h = headers(&[
            ("x-forwarded-for", ""),
            ("x-real-ip", "nope"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.example/<script>"),
            ("host", "127.0.0.1:5006"),
        ]);
        let v = client_view(peer("127.0.0.1:1"), &h, &on());
        assert_eq!(v.client, ip("127.0.0.1"));
        assert_eq!(v.scheme, Scheme::Http);
        assert_eq!(v.host.as_deref(), Some("127.0.0.1:5006"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-host",
            axum::http::HeaderValue::from_bytes(b"h\xffst").unwrap(),
        );
        let v = client_view(peer("127.0.0.1:1"), &h, &on());
        assert_eq!(v.host, None);
        for bad in ["", "1.2.3.4/33", "::1/129", "10.0.0.0/x", "host.example"] {
            assert!(bad.parse::<ProxyNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_nearest_proxy_sets_proto_and_host() {
        let h = headers(&[
            ("x-forwarded-proto", "http, HTTPS"),
            ("x-forwarded-host", "inner.example, Plots.Example.com:8443"),
        ]);
        let v = client_view(peer("127.0.0.1:1"), &h, &on());
        assert_eq!(v.scheme, Scheme::Https);
        assert_eq!(v.host.as_deref(), Some("plots.example.com:8443"));
    }

    #[test]
    fn rfc_7239_forwarded_is_read_when_the_x_headers_are_absent() {
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https;host=plots.example.com",
        )]);
        let v = client_view(peer("127.0.0.1:1"), &h, &on());
        assert_eq!(v.client, ip("2001:db8:cafe::17"));
        assert_eq!(v.scheme, Scheme::Https);
        assert_eq!(v.host.as_deref(), Some("plots.example.com"));
        // Obfuscated identifiers are not addresses.
        let h = headers(&[("forwarded", "for=_hidden"), ("x-real-ip", "192.0.2.9")]);
        assert_eq!(
            client_view(peer("127.0.0.1:1"), &h, &on()).client,
            ip("192.0.2.9")
        );
        // The X- headers win over Forwarded.
        let h = headers(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ]);
        assert_eq!(
            client_view(peer("127.0.0.1:1"), &h, &on()).client,
            ip("192.0.2.2")
        );
    }

    #[test]
    fn a_long_chain_is_read_from_the_right_only_so_far() {
        let chain = vec!["127.0.0.1"; MAX_HOPS + 5].join(", ");
        let chain = format!("203.0.113.1, {chain}");
        let h = headers(&[("x-forwarded-for", &chain)]);
        // The untrusted hop is past MAX_HOPS: the left-most hop looked at is taken.
        assert_eq!(
            client_view(peer("127.0.0.1:1"), &h, &on()).client,
            ip("127.0.0.1")
        );
    }
}
