//! The admin API needs a key and checks where a request comes from (issue #15), on a real node
//! process over real sockets:
//!
//! - without `Authorization: Bearer <token>`, or with a wrong token: 401, the API's JSON error and
//!   `WWW-Authenticate: Bearer`;
//! - a cross-origin `text/plain` POST, which is what an HTML form on a hostile page sends (no
//!   preflight, the browser attaches no token): refused, and the ban it asks for is not done;
//! - a Host header that is not the admin address (DNS rebinding: a hostile name resolved to
//!   127.0.0.1) is refused with 421 even with the right token;
//! - no CORS header on any answer, preflight included;
//! - the token is a cookie file in the data directory, mode 0600, kept across restarts, and
//!   `vision-node admin` reads it by itself; an operator's token file replaces it.

use std::io::{Read, Write};
use std::path::Path;

use crate::common::{NodeProcess, cli, cli_ok};

/// A valid peer id that no node of these tests has (the compose bootnode's public test key).
const STRANGER: &str = "12D3KooWEmuVdjpNnbA6dKy3ntY8WYgb2cx1QZDDnwKEtbFHhWxE";

/// An answer: status, headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {:?}", self.body));
        v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {}", self.body)).to_string()
    }
}

/// Sends one raw HTTP/1.1 request to `base` (`http://host:port`) with exactly these headers (no
/// Host unless given) and returns the answer.
fn raw(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).to_string();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { crate::common::dechunk(body) } else { body.to_string() };
    Answer { status, headers, body }
}

/// The cookie's token.
fn cookie(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.cookie")).expect("admin.cookie in the data dir").trim().to_string()
}

fn host_of(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// The bans the node lists, through an authorised request.
fn bans(n: &NodeProcess, token: &str) -> Vec<String> {
    let bearer = format!("Bearer {token}");
    let a = raw(&n.admin, "GET", "/admin/bans", &[("Host", host_of(&n.admin)), ("Authorization", &bearer)], "");
    assert_eq!(a.status, 200, "{}", a.body);
    let list: Vec<serde_json::Value> = serde_json::from_str(&a.body).unwrap();
    list.iter().map(|b| b["peer_id"].as_str().unwrap().to_string()).collect()
}

fn no_cors(a: &Answer, what: &str) {
    let cors: Vec<_> = a.headers.iter().filter(|(k, _)| k.starts_with("access-control-")).collect();
    assert!(cors.is_empty(), "{what}: CORS headers {cors:?}");
}

/// `vision-node run` on `data_dir` (no mining, no network, free loopback ports) plus `extra`,
/// for a start that must fail: returns its output.
fn run_once(data_dir: &str, extra: &[&str]) -> std::process::Output {
    let base = [
        "run",
        "--data-dir",
        data_dir,
        "--mine",
        "false",
        "--network",
        "false",
        "--api-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    cli(&[&base[..], extra].concat())
}

fn node(dir: &Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["--mine", "false"];
    args.extend_from_slice(extra);
    NodeProcess::start_networked(dir, &args)
}

#[test]
fn requests_without_the_right_token_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &[]);
    let host = host_of(&n.admin).to_string();
    let token = cookie(dir.path());
    let ban_path = format!("/admin/peers/{STRANGER}/ban");
    let json = ("Content-Type", "application/json");
    let wrong = format!("Bearer {}", "0".repeat(64));
    let short = format!("Bearer {}", &token[..63]);
    let lower = format!("bearer {token}");
    for (what, auth) in [
        ("no Authorization", None),
        ("a wrong token", Some(wrong.as_str())),
        ("the token less one digit", Some(short.as_str())),
        ("the token as Basic", Some("Basic YWRtaW46YWRtaW4=")),
        ("an empty bearer", Some("Bearer ")),
    ] {
        for (method, path, body) in [
            ("GET", "/admin/bans", ""),
            ("POST", ban_path.as_str(), "{\"duration_secs\": 3600}"),
            ("GET", "/admin/nope", ""),
        ] {
            let mut headers = vec![("Host", host.as_str()), json];
            if let Some(a) = auth {
                headers.push(("Authorization", a));
            }
            let a = raw(&n.admin, method, path, &headers, body);
            assert_eq!(a.status, 401, "{what}: {method} {path}: {}", a.body);
            assert_eq!(a.code(), "unauthorized", "{what}");
            assert!(a.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{what}: {:?}", a.headers);
            no_cors(&a, what);
        }
    }
    // The scheme name is case-insensitive (RFC 9110 section 11.1).
    let a = raw(&n.admin, "GET", "/admin/bans", &[("Host", &host), ("Authorization", &lower)], "");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(bans(&n, &token).is_empty(), "no refused request banned anyone");
    // The right token works for every method.
    let bearer = format!("Bearer {token}");
    let a = raw(
        &n.admin,
        "POST",
        &ban_path,
        &[("Host", &host), ("Authorization", &bearer), json],
        "{\"duration_secs\": 3600}",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(bans(&n, &token), vec![STRANGER.to_string()]);
    let a = raw(&n.admin, "DELETE", &ban_path, &[("Host", &host), ("Authorization", &bearer)], "");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(bans(&n, &token).is_empty());
    // The public API needs no token and is unchanged.
    let a = raw(&n.api, "GET", "/v1/status", &[("Host", host_of(&n.api))], "");
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn a_cross_origin_form_post_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &[]);
    let host = host_of(&n.admin).to_string();
    let token = cookie(dir.path());
    let bearer = format!("Bearer {token}");
    let ban_path = format!("/admin/peers/{STRANGER}/ban");
    let form = ("Content-Type", "text/plain");
    let evil = ("Origin", "http://evil.example");
    let body = "{\"duration_secs\": 3600}";
    // What a hostile page's <form enctype="text/plain"> sends: no token, its Origin, text/plain.
    let a = raw(&n.admin, "POST", &ban_path, &[("Host", &host), evil, form], body);
    assert!(a.status == 401 || a.status == 403, "hostile form: {} {}", a.status, a.body);
    no_cors(&a, "hostile form");
    // Even with the token (a page cannot have it, but the Origin check stands on its own).
    let a = raw(&n.admin, "POST", &ban_path, &[("Host", &host), evil, form, ("Authorization", &bearer)], body);
    assert_eq!((a.status, a.code().as_str()), (403, "forbidden_origin"), "{}", a.body);
    let a = raw(
        &n.admin,
        "POST",
        &ban_path,
        &[("Host", &host), evil, ("Authorization", &bearer), ("Content-Type", "application/json")],
        body,
    );
    assert_eq!((a.status, a.code().as_str()), (403, "forbidden_origin"), "{}", a.body);
    // `Origin: null` (sandboxed frames, file: pages) is an origin too.
    let a = raw(
        &n.admin,
        "POST",
        &ban_path,
        &[("Host", &host), ("Origin", "null"), ("Authorization", &bearer), ("Content-Type", "application/json")],
        body,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // A body that is not declared JSON is refused, token or not.
    let a = raw(&n.admin, "POST", &ban_path, &[("Host", &host), form, ("Authorization", &bearer)], body);
    assert_eq!((a.status, a.code().as_str()), (415, "unsupported_media_type"), "{}", a.body);
    let a = raw(&n.admin, "POST", &ban_path, &[("Host", &host), ("Authorization", &bearer)], body);
    assert_eq!((a.status, a.code().as_str()), (415, "unsupported_media_type"), "no Content-Type: {}", a.body);
    // A CORS preflight gets no CORS header, so a browser never sends the real request.
    let a = raw(
        &n.admin,
        "OPTIONS",
        &ban_path,
        &[
            ("Host", &host),
            evil,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
        "",
    );
    assert!(a.status >= 400, "preflight: {} {}", a.status, a.body);
    no_cors(&a, "preflight");
    assert!(bans(&n, &token).is_empty(), "the cross-origin POSTs banned nobody");
}

#[test]
fn a_rebound_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &["--admin-allowed-host", "admin.internal"]);
    let token = cookie(dir.path());
    let bearer = format!("Bearer {token}");
    let port = n.admin.rsplit(':').next().unwrap().to_string();
    let ok = |h: &str| {
        let a = raw(&n.admin, "GET", "/admin/bans", &[("Host", h), ("Authorization", &bearer)], "");
        (a.status, a)
    };
    for good in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
        format!("admin.internal:{port}"),
    ] {
        let (status, a) = ok(&good);
        assert_eq!(status, 200, "Host {good}: {}", a.body);
    }
    for bad in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1)),
        "127.0.0.1".to_string(),
        format!("admin.internal:{}", port.parse::<u16>().unwrap().wrapping_add(1)),
    ] {
        let (status, a) = ok(&bad);
        assert_eq!((status, a.code().as_str()), (421, "wrong_host"), "Host {bad}: {}", a.body);
        no_cors(&a, &bad);
    }
    // No Host at all.
    let a = raw(&n.admin, "GET", "/admin/bans", &[("Authorization", &bearer)], "");
    assert_eq!(a.status, 421, "no Host: {}", a.body);
    // A rebinding page cannot ban through a wrong Host either.
    let ban_path = format!("/admin/peers/{STRANGER}/ban");
    let a = raw(
        &n.admin,
        "POST",
        &ban_path,
        &[("Host", &format!("evil.example:{port}")), ("Authorization", &bearer), ("Content-Type", "application/json")],
        "{\"duration_secs\": 3600}",
    );
    assert_eq!(a.status, 421, "{}", a.body);
    assert!(bans(&n, &token).is_empty());
}

#[test]
fn the_cookie_is_private_kept_and_read_by_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let n = node(&data, &[]);
    let path = data.join("admin.cookie");
    let meta = std::fs::metadata(&path).expect("the node wrote admin.cookie");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "cookie mode");
    let token = cookie(&data);
    assert_eq!(token.len(), 64, "32 random bytes in hex: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token:?}");
    // The CLI finds the cookie in the data directory: nothing else to give it.
    let data_s = data.to_str().unwrap();
    let said = cli_ok(&["admin", "deep-fork", "keep", "--admin", &n.admin, "--data-dir", data_s]);
    assert!(said.contains("nothing to keep"), "{said}");
    let out = std::process::Command::new(crate::common::bin())
        .args(["admin", "deep-fork", "keep", "--admin", &n.admin])
        .env("VISION_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(out.status.success(), "with VISION_DATA_DIR: {}", String::from_utf8_lossy(&out.stderr));
    // Ban, list, unban through the CLI, with nothing but the data directory.
    let conn = ["--admin", n.admin.as_str(), "--data-dir", data_s];
    let said = cli_ok(&[&["admin", "ban", STRANGER, "--secs", "600"][..], &conn].concat());
    assert!(said.contains(STRANGER), "{said}");
    assert!(cli_ok(&[&["admin", "bans"][..], &conn].concat()).contains(STRANGER));
    assert_eq!(bans(&n, &token), vec![STRANGER.to_string()]);
    cli_ok(&[&["admin", "unban", STRANGER][..], &conn].concat());
    assert_eq!(cli_ok(&[&["admin", "bans"][..], &conn].concat()), "no bans");
    // Without the cookie (another data dir) the CLI says where the token should have been.
    let empty = dir.path().join("elsewhere");
    std::fs::create_dir_all(&empty).unwrap();
    let out = cli(&["admin", "deep-fork", "keep", "--admin", &n.admin, "--data-dir", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.cookie") && err.contains("--admin-token-file"), "{err}");
    // The same token after a restart.
    assert!(n.terminate());
    let n = node(&data, &[]);
    assert_eq!(cookie(&data), token, "the cookie is kept across restarts");
    cli_ok(&["admin", "deep-fork", "keep", "--admin", &n.admin, "--data-dir", data_s]);
    drop(n);
    // A group-readable cookie is refused at start with the chmod to run.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run_once(data_s, &[]);
    assert!(!out.status.success(), "a loose cookie must stop the node");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn an_operator_token_file_replaces_the_cookie() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("admin.token");
    let token = "my-own-admin-token-of-forty-characters-x";
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file_s = file.to_str().unwrap();
    let n = node(&data, &["--admin-token-file", file_s]);
    assert!(!data.join("admin.cookie").exists(), "no cookie when the operator gives the token");
    let bearer = format!("Bearer {token}");
    let a = raw(&n.admin, "GET", "/admin/bans", &[("Host", host_of(&n.admin)), ("Authorization", &bearer)], "");
    assert_eq!(a.status, 200, "{}", a.body);
    let said = cli_ok(&["admin", "deep-fork", "keep", "--admin", &n.admin, "--admin-token-file", file_s]);
    assert!(said.contains("nothing to keep"), "{said}");
    drop(n);
    // A token too short to be a secret is refused at start, saying how to make one.
    std::fs::write(&file, "short\n").unwrap();
    let out = run_once(data.to_str().unwrap(), &["--admin-token-file", file_s]);
    assert!(!out.status.success(), "a short token must stop the node");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"), "{}", String::from_utf8_lossy(&out.stderr));
}
