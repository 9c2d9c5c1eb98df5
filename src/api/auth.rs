//! The admin API's key and request checks (issue #15): what stops a web page the operator visits,
//! or a DNS name rebound to 127.0.0.1, from banning peers or dialling an attacker's node.
//!
//! Every admin request passes [`check`] before it is routed, in this order:
//!
//! | check | refused with | why |
//! |---|---|---|
//! | the Host (or HTTP/2 authority) is the admin address, `localhost`, `127.0.0.1` or `[::1]` with the admin port, or a host the operator allows (`--admin-allowed-host`) | 421 `wrong_host` | DNS rebinding: a hostile name resolved to 127.0.0.1 still sends its own name as Host |
//! | no `Origin` header, or one the operator allows (`--admin-allowed-origin`) | 403 `forbidden_origin` | browsers attach `Origin` to every cross-origin POST/DELETE; the CLI and scripts send none |
//! | `Authorization: Bearer <token>`, compared in constant time | 401 `unauthorized` + `WWW-Authenticate: Bearer` | the key itself |
//! | a body, or any `Content-Type`, is `application/json` | 415 `unsupported_media_type` | an HTML form can only send `text/plain`, urlencoded or multipart without a CORS preflight |
//!
//! No CORS header is ever sent, so a browser's preflight fails and it never sends a cross-origin
//! request that needs one. 421 (Misdirected Request, RFC 9110 section 15.5.20) rather than 403
//! for a wrong Host: the request reached a server that does not serve that authority, which no
//! credential changes; 403 is kept for a forbidden origin.
//!
//! The token ([`AdminToken`]) comes from a file the operator names (`--admin-token-file`), or else
//! from the cookie file `DATA_DIR/admin.cookie` ([`COOKIE_FILE`]): 32 random bytes in hex, created
//! on first start (mode 0600, written crash-safely by [`vision_primitives::keys::write_secret_file`]:
//! temporary file, fsync, link, directory fsync), kept across restarts, refused when group or
//! others may read it. Deleting the cookie and restarting rotates the token. `vision-node admin`
//! reads the same file ([`read_client_token`]). Only a BLAKE3 digest of the token stays in memory.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thiserror::Error;
use vision_primitives::keys::{KeyError, Zeroizing, read_provided_secret_file, read_secret_file, write_secret_file};

use super::ApiError;

/// Name of the cookie file in the data directory.
pub const COOKIE_FILE: &str = "admin.cookie";
/// Random bytes in a cookie's token (64 hex digits).
pub const COOKIE_TOKEN_BYTES: usize = 32;
/// Shortest token accepted from an operator's file: 32 characters (128 bits as hex, or more).
pub const MIN_TOKEN_CHARS: usize = 32;
/// Longest token accepted (it travels in a header).
pub const MAX_TOKEN_CHARS: usize = 1024;
/// Longest a request waits for the node to report the admin listener's port (only when it was
/// configured as port 0; the node reports it right after binding).
const BOUND_WAIT: Duration = Duration::from_secs(10);
/// `WWW-Authenticate` of a 401 without a token.
const CHALLENGE: &str = "Bearer realm=\"vision-node admin\"";
/// `WWW-Authenticate` of a 401 with a wrong token (RFC 6750 section 3).
const CHALLENGE_INVALID: &str = "Bearer realm=\"vision-node admin\", error=\"invalid_token\"";

/// How the admin API is protected (`--admin-token-file`, `--admin-allowed-host`,
/// `--admin-allowed-origin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminAuthConfig {
    /// A file holding the token; `None`: the cookie file in the data directory.
    pub token_file: Option<PathBuf>,
    /// Hosts accepted besides the admin address and the loopback names: `name` (with the admin
    /// port), `name:port`, or `*` (no Host check, e.g. behind a reverse proxy that checks it).
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) whose browser requests are accepted; none by default.
    pub allowed_origins: Vec<String>,
}

/// Why the admin token cannot be set up or read.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The token or cookie file cannot be read, written, or is readable by others.
    #[error("admin API token: {0}")]
    Key(#[from] KeyError),
    /// The file does not hold a usable token.
    #[error("admin API token file {path}: {message}")]
    Token {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The OS gave no randomness for a new cookie.
    #[error("admin API token: no randomness from the operating system: {0}")]
    Random(String),
    /// An allowed host or origin is malformed.
    #[error("{0}")]
    Setting(String),
}

/// The admin token, kept as its BLAKE3 digest: `blake3::Hash` compares in constant time, and the
/// digest hides the token's length as well.
#[derive(Clone)]
pub struct AdminToken {
    digest: blake3::Hash,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// The token in `text` (surrounding whitespace ignored): 32 to 1024 visible ASCII characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        let token = text.trim();
        if token.len() < MIN_TOKEN_CHARS {
            return Err(format!(
                "the token must be at least {MIN_TOKEN_CHARS} characters, not {}; make one with `openssl rand -hex 32`",
                token.len()
            ));
        }
        if token.len() > MAX_TOKEN_CHARS {
            return Err(format!("the token must be at most {MAX_TOKEN_CHARS} characters"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be visible ASCII characters without spaces (it travels in a header)".into());
        }
        Ok(AdminToken { digest: blake3::hash(token.as_bytes()) })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        blake3::hash(presented) == self.digest
    }
}

/// Where the token came from (for the logs and the 401 message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The operator's file.
    File(PathBuf),
    /// The cookie in the data directory; `created` on this start.
    Cookie {
        /// The cookie file.
        path: PathBuf,
        /// Whether this start created it.
        created: bool,
    },
    /// A random token held in memory only (a node without a data directory and without
    /// `--admin-token-file`): nobody can use the admin API.
    Ephemeral,
}

/// The cookie file of a data directory.
pub fn cookie_path(data_dir: &Path) -> PathBuf {
    data_dir.join(COOKIE_FILE)
}

fn token_in(path: &Path, text: &str) -> Result<AdminToken, AuthError> {
    AdminToken::parse(text).map_err(|message| AuthError::Token { path: path.display().to_string(), message })
}

/// Reads the cookie of `data_dir`, creating it (32 random bytes in hex, mode 0600, crash-safe)
/// when there is none. Returns the token and whether it was created.
pub fn load_or_create_cookie(data_dir: &Path) -> Result<(AdminToken, bool), AuthError> {
    let path = cookie_path(data_dir);
    match read_secret_file(&path) {
        Ok(text) => return Ok((token_in(&path, &text)?, false)),
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut bytes = Zeroizing::new([0u8; COOKIE_TOKEN_BYTES]);
    getrandom::fill(&mut *bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    let mut text = Zeroizing::new(vec![0u8; 2 * COOKIE_TOKEN_BYTES + 1]);
    hex::encode_to_slice(&bytes[..], &mut text[..2 * COOKIE_TOKEN_BYTES]).expect("64 hex digits for 32 bytes");
    text[2 * COOKIE_TOKEN_BYTES] = b'\n';
    match write_secret_file(&path, &text) {
        Ok(()) => {}
        // Another process created it between our read and our write: use theirs.
        Err(KeyError::Exists(_)) => return Ok((token_in(&path, &read_secret_file(&path)?)?, false)),
        Err(e) => return Err(e.into()),
    }
    let token = std::str::from_utf8(&text).expect("hex is ASCII");
    Ok((token_in(&path, token)?, true))
}

/// The node's token: the operator's file if configured (a file owned by another user, such as a
/// mounted secret, may be group-readable; it is then accepted with a warning), else the cookie of
/// `data_dir` (created if missing), else (no data directory) a random one nobody knows.
pub fn load_token(config: &AdminAuthConfig, data_dir: Option<&Path>) -> Result<(AdminToken, TokenSource), AuthError> {
    if let Some(path) = &config.token_file {
        let (text, loose) = read_provided_secret_file(path)?;
        if let Some(mode) = loose {
            tracing::warn!(file = %path.display(), mode = format!("{mode:03o}"), "the admin token file is readable by group or others (it belongs to another user, so it is accepted)");
        }
        return Ok((token_in(path, &text)?, TokenSource::File(path.clone())));
    }
    match data_dir {
        Some(dir) => {
            let (token, created) = load_or_create_cookie(dir)?;
            Ok((token, TokenSource::Cookie { path: cookie_path(dir), created }))
        }
        None => {
            let mut bytes = Zeroizing::new([0u8; COOKIE_TOKEN_BYTES]);
            getrandom::fill(&mut *bytes).map_err(|e| AuthError::Random(e.to_string()))?;
            let token = AdminToken::parse(&hex::encode(&bytes[..])).expect("64 hex digits are a token");
            Ok((token, TokenSource::Ephemeral))
        }
    }
}

/// The token a client (`vision-node admin`) sends: the text of `token_file` if given, else of the
/// cookie in `data_dir`. The error names the file and both ways to fix it.
pub fn read_client_token(token_file: Option<&Path>, data_dir: &Path) -> Result<Zeroizing<String>, AuthError> {
    let path = token_file.map(Path::to_path_buf).unwrap_or_else(|| cookie_path(data_dir));
    let text = match token_file {
        Some(p) => read_provided_secret_file(p).map(|(t, _)| t),
        None => read_secret_file(&path),
    };
    let text = text.map_err(|e| match e {
        KeyError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => AuthError::Token {
            path: path.display().to_string(),
            message: format!(
                "not found: give the node's data directory (--data-dir, where the node creates {COOKIE_FILE} on start) or the token file it uses (--admin-token-file)"
            ),
        },
        other => AuthError::Key(other),
    })?;
    token_in(&path, &text)?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// A Host the operator allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    /// `*`: no Host check.
    Any,
    /// `name`: with the admin port.
    Name(String),
    /// `name:port`.
    NamePort(String, u16),
}

/// A Host header's name (lowercase, IPv6 in brackets, no trailing dot) and port, if well formed.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let a = authority.trim();
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (inner, tail) = rest.split_once(']')?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':')?.parse().ok()?),
        };
        (format!("[{}]", inner.parse::<std::net::Ipv6Addr>().ok()?), port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (a.to_string(), None),
        }
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host).to_string();
    let bad = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    if host.is_empty() || host.contains(bad) || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    Some((host, port))
}

/// The IP address a host name is, if it is a literal.
fn ip_literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

fn parse_allowed_host(s: &str) -> Result<AllowedHost, AuthError> {
    if s.trim() == "*" {
        return Ok(AllowedHost::Any);
    }
    match split_authority(s) {
        Some((h, Some(p))) => Ok(AllowedHost::NamePort(h, p)),
        Some((h, None)) => Ok(AllowedHost::Name(h)),
        None => Err(AuthError::Setting(format!("--admin-allowed-host {s:?} is not a host name, `name:port` or `*`"))),
    }
}

fn parse_allowed_origin(s: &str) -> Result<String, AuthError> {
    let o = s.trim().trim_end_matches('/').to_ascii_lowercase();
    let ok = o
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/'));
    if !ok {
        return Err(AuthError::Setting(format!(
            "--admin-allowed-origin {s:?} is not an origin like https://ops.example.com (scheme, host, optional port)"
        )));
    }
    Ok(o)
}

struct Guard {
    token: AdminToken,
    hosts: Vec<AllowedHost>,
    origins: Vec<String>,
    /// The admin listener's address, once known.
    bound: tokio::sync::watch::Sender<Option<SocketAddr>>,
    /// Where the token is, for the 401 message.
    hint: String,
}

/// The admin API's checks, shared by its requests ([`check`]).
#[derive(Clone)]
pub struct AdminGuard(Arc<Guard>);

impl std::fmt::Debug for AdminGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminGuard").field("hosts", &self.0.hosts).field("origins", &self.0.origins).finish()
    }
}

impl AdminGuard {
    /// A guard with this token for an admin API configured on `addr` (its port may be 0: the node
    /// then reports the bound address with [`AdminGuard::bound`]).
    pub fn new(
        token: AdminToken,
        source: &TokenSource,
        config: &AdminAuthConfig,
        addr: SocketAddr,
    ) -> Result<Self, AuthError> {
        let hosts = config.allowed_hosts.iter().map(|h| parse_allowed_host(h)).collect::<Result<_, _>>()?;
        let origins = config.allowed_origins.iter().map(|o| parse_allowed_origin(o)).collect::<Result<_, _>>()?;
        let hint = match source {
            TokenSource::File(p) => format!("the token is in {} (--admin-token-file)", p.display()),
            TokenSource::Cookie { path, .. } => {
                format!("the token is in {} (`vision-node admin` reads it by itself)", path.display())
            }
            TokenSource::Ephemeral => {
                "this node has no data directory and no --admin-token-file, so no token is usable".to_string()
            }
        };
        let bound = tokio::sync::watch::Sender::new((addr.port() != 0).then_some(addr));
        Ok(AdminGuard(Arc::new(Guard { token, hosts, origins, bound, hint })))
    }

    /// Loads (or creates) the token for `config` and builds the guard; logs where the token is.
    pub fn start(config: &AdminAuthConfig, data_dir: Option<&Path>, addr: SocketAddr) -> Result<Self, AuthError> {
        let (token, source) = load_token(config, data_dir)?;
        match &source {
            TokenSource::File(p) => tracing::info!(file = %p.display(), "admin API token from --admin-token-file"),
            TokenSource::Cookie { path, created } => {
                tracing::info!(cookie = %path.display(), created, "admin API token in the cookie file")
            }
            TokenSource::Ephemeral => tracing::warn!(
                "the admin API has no data directory to keep its token in; give --admin-token-file to use it"
            ),
        }
        Self::new(token, &source, config, addr)
    }

    /// Reports the address the admin listener is bound to (needed when it was configured with port 0).
    pub fn bound(&self, addr: SocketAddr) {
        self.0.bound.send_replace(Some(addr));
    }

    /// Whether `authority` (a Host header or HTTP/2 authority) names this admin API bound on `bound`.
    fn host_allowed(&self, authority: &str, bound: SocketAddr) -> bool {
        if self.0.hosts.contains(&AllowedHost::Any) {
            return true;
        }
        let Some((host, port)) = split_authority(authority) else { return false };
        let port = port.unwrap_or(80);
        let ours = port == bound.port()
            && (host == "localhost"
                || ip_literal(&host).is_some_and(|ip| {
                    ip.is_loopback() && ip == loopback_like(ip) || ip == bound.ip() || bound.ip().is_unspecified()
                }));
        ours || self.0.hosts.iter().any(|h| match h {
            AllowedHost::Any => true,
            AllowedHost::Name(n) => *n == host && port == bound.port(),
            AllowedHost::NamePort(n, p) => *n == host && *p == port,
        })
    }
}

/// `127.0.0.1` or `::1` for a loopback address of that family (only those two are loopback names).
fn loopback_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    }
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, code, message).into_response()
}

fn unauthorized(message: String, challenge: &'static str) -> Response {
    let mut res = refuse(StatusCode::UNAUTHORIZED, "unauthorized", message);
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    res
}

/// Whether a `Content-Type` value is JSON (`application/json`, any parameters).
fn is_json(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The admin API's gate (see the module docs): Host, Origin, token, content type.
pub async fn check(State(guard): State<AdminGuard>, req: Request, next: Next) -> Response {
    let g = &guard.0;
    // Host.
    let mut bound_rx = g.bound.subscribe();
    let bound = match tokio::time::timeout(BOUND_WAIT, bound_rx.wait_for(Option::is_some)).await {
        Ok(Ok(addr)) => addr.expect("waited for Some"),
        _ => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "starting", "the admin API is starting; retry".into());
        }
    };
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    match &authority {
        Some(a) if guard.host_allowed(a, bound) => {}
        other => {
            let shown = other.as_deref().map_or_else(|| "no Host header".to_string(), |a| format!("Host {a:?}"));
            tracing::debug!(host = ?other, "admin request refused: wrong Host");
            return refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "wrong_host",
                format!(
                    "{shown} is not this admin API; use 127.0.0.1:{port}, localhost:{port} or [::1]:{port}, or allow the name with --admin-allowed-host",
                    port = bound.port()
                ),
            );
        }
    }
    // Origin.
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("").trim_end_matches('/').to_ascii_lowercase();
        if !g.origins.contains(&o) {
            tracing::warn!(origin = ?origin, "admin request from a web page refused");
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!(
                    "requests from web pages (Origin {origin:?}) are refused; allow an origin with --admin-allowed-origin"
                ),
            );
        }
    }
    // Token.
    let presented = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let token = presented.and_then(|v| {
        let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ').unwrap_or(v.len()));
        scheme.eq_ignore_ascii_case(b"bearer").then(|| rest.trim_ascii())
    });
    match token {
        Some(t) if !t.is_empty() && g.token.matches(t) => {}
        Some(t) if !t.is_empty() => {
            return unauthorized(format!("wrong admin token; {}", g.hint), CHALLENGE_INVALID);
        }
        _ => {
            return unauthorized(
                format!("the admin API needs the header `Authorization: Bearer <token>`; {}", g.hint),
                CHALLENGE,
            );
        }
    }
    // Content type.
    let headers = req.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    match headers.get(header::CONTENT_TYPE) {
        Some(ct) if !is_json(ct) => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {ct:?}: admin request bodies must be application/json"),
            );
        }
        None if has_body => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "a body without Content-Type: admin request bodies must be application/json".into(),
            );
        }
        _ => {}
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(hosts: &[&str], bound: &str) -> (AdminGuard, SocketAddr) {
        let config =
            AdminAuthConfig { allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let addr: SocketAddr = bound.parse().unwrap();
        let token = AdminToken::parse(&"a".repeat(64)).unwrap();
        (AdminGuard::new(token, &TokenSource::Ephemeral, &config, addr).unwrap(), addr)
    }

    #[test]
    fn hosts() {
        let (g, b) = guard(&["node1.internal", "proxy:8443"], "127.0.0.1:7071");
        for ok in
            ["127.0.0.1:7071", "localhost:7071", "LocalHost.:7071", "[::1]:7071", "node1.internal:7071", "proxy:8443"]
        {
            assert!(g.host_allowed(ok, b), "{ok}");
        }
        for bad in [
            "evil.example:7071",
            "localhost",
            "127.0.0.1:7072",
            "127.0.0.2:7071",
            "10.0.0.1:7071",
            "node1.internal:8443",
            "proxy:7071",
            "localhost.evil:7071",
            "[::1:7071",
            "::1:7071",
            "a b:7071",
            "",
        ] {
            assert!(!g.host_allowed(bad, b), "{bad}");
        }
        let (g, b) = guard(&[], "0.0.0.0:7071");
        assert!(g.host_allowed("10.0.0.1:7071", b), "any local IP literal when bound to all interfaces");
        assert!(!g.host_allowed("node1:7071", b), "but names only when allowed");
        let (g, b) = guard(&["*"], "127.0.0.1:7071");
        assert!(g.host_allowed("anything:1", b));
    }

    #[test]
    fn settings_are_checked() {
        assert!(parse_allowed_host("a b").is_err());
        assert!(parse_allowed_origin("evil.example").is_err());
        assert!(parse_allowed_origin("https://ops.example.com/path").is_err());
        assert_eq!(parse_allowed_origin("HTTPS://Ops.example.com/").unwrap(), "https://ops.example.com");
    }

    #[test]
    fn tokens() {
        assert!(AdminToken::parse("short").is_err());
        assert!(AdminToken::parse(&"x".repeat(MAX_TOKEN_CHARS + 1)).is_err());
        assert!(AdminToken::parse(&format!("{} {}", "a".repeat(20), "b".repeat(20))).is_err());
        let t = AdminToken::parse(&format!("  {}\n", "k".repeat(40))).unwrap();
        assert!(t.matches("k".repeat(40).as_bytes()));
        assert!(!t.matches("k".repeat(39).as_bytes()));
        assert!(!t.matches(b""));
    }

    #[test]
    fn cookie_is_created_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (t1, created) = load_or_create_cookie(dir.path()).unwrap();
        assert!(created);
        let text = std::fs::read_to_string(cookie_path(dir.path())).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(t1.matches(text.trim().as_bytes()));
        let mode = std::fs::metadata(cookie_path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (t2, created) = load_or_create_cookie(dir.path()).unwrap();
        assert!(!created);
        assert!(t2.matches(text.trim().as_bytes()));
        assert_eq!(read_client_token(None, dir.path()).unwrap().as_str(), text.trim());
        std::fs::set_permissions(cookie_path(dir.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_cookie(dir.path()).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let other = tempfile::tempdir().unwrap();
        let e = read_client_token(None, other.path()).unwrap_err().to_string();
        assert!(e.contains("--admin-token-file") && e.contains("--data-dir"), "{e}");
    }
}
