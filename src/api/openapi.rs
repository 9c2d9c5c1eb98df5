//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types' `ToSchema` derives, so it cannot drift from the code.
//!
//! One document covers both listeners: the public API and, tagged `admin` and carrying the admin
//! address as their `servers` entry, the admin API (served on `--admin-addr` only). It is served at
//! `GET /v1/openapi.json` and checked in as `docs/openapi.json`; the integration test
//! `api_ws::openapi_document_is_checked_in` fails when the two differ, and
//! `VISION_WRITE_OPENAPI=1 cargo test --release --test it openapi` rewrites the file.
//!
//! Every operation documents its specific error statuses and codes; a modifier adds the generic
//! `4XX` and `5XX` error responses to all of them, since every error uses [`ErrorBody`], and the
//! answers of the public API's limits ([`super::limits`]: 429 `rate_limited`, 503 `busy` and
//! `timeout`, with `Retry-After`) to every public operation.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{Content, RefOr, Required, Response, Schema, SchemaFormat};
use utoipa::{Modify, OpenApi, ToSchema};

use super::ws::{WsMessage, WsRequest, WsStream};
use super::{ErrorBody, ErrorDetail, TxJson};
use utoipa::openapi::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// Path of the checked-in document, relative to the repository root.
pub const CHECKED_IN_PATH: &str = "docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vision Node API",
        description = "HTTP JSON API, WebSocket stream and admin API of a Vision node. Amounts and work are decimal strings; every error is `{\"error\": {\"code\", \"message\"}}` (codes in docs/api.md). The `admin` operations are served on the admin address (`--admin-addr`, loopback by default) only.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::chain::status,
        super::chain::block,
        super::accounts::account,
        super::accounts::account_txs,
        super::txs::submit,
        super::txs::submit_batch,
        super::txs::tx_status,
        super::network::peers,
        super::ws::upgrade,
        serve,
        super::admin::admin_bans,
        super::admin::admin_ban,
        super::admin::admin_unban,
        super::admin::admin_dial,
        super::deep_fork::keep,
        super::admin::admin_reconsider,
    ),
    components(schemas(WsRequest, WsMessage, WsStream, ErrorBody, ErrorDetail, TxJson)),
    tags(
        (name = "chain", description = "Status and blocks."),
        (name = "accounts", description = "Balances, nonces and account history."),
        (name = "transactions", description = "Submitting transactions and following them."),
        (name = "network", description = "Peers."),
        (name = "stream", description = "The WebSocket stream of new heads and transactions."),
        (name = "meta", description = "This document."),
        (name = "admin", description = "Operator actions, served on the admin address (`--admin-addr`) only."),
    ),
    modifiers(&Finish),
)]
struct ApiDoc;

/// The OpenAPI document of the public and admin APIs.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a trailing newline: the exact content of `docs/openapi.json`.
pub fn pretty_json() -> Result<String, serde_json::Error> {
    let mut s = document().to_pretty_json()?;
    s.push('\n');
    Ok(s)
}

/// This document: the OpenAPI 3.1 description of the public API and the admin API.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document (also checked in as `docs/openapi.json`).", content_type = "application/json", body = Object))
)]
pub(super) async fn serve() -> Result<impl IntoResponse, super::ApiError> {
    let body = pretty_json()
        .map_err(|e| super::ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

/// Name of the admin API's security scheme (HTTP bearer: the token of `admin.cookie` or
/// `--admin-token-file`, [`super::auth`]).
pub const ADMIN_SECURITY: &str = "admin_token";

/// Adds what the macros cannot say: the generic error responses of every operation, the admin
/// address as the server of the admin operations, their bearer-token security and the answers of
/// the admin gate, and the `vis-address` format of addresses (a pattern cannot state the bech32m
/// checksum; the format names it for generators that know it).
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let error_response = |description: &str| -> Response {
            let mut r = Response::new(description);
            r.content
                .insert("application/json".into(), RefOr::T(Content::new(Some(RefOr::Ref(ErrorBody::reference())))));
            r
        };
        let error = |description: &str| -> RefOr<Response> { RefOr::T(error_response(description)) };
        let admin_server = Server::builder()
            .url(format!("http://{}", crate::config::DEFAULT_ADMIN_ADDR))
            .description(Some("The admin address (`--admin-addr`; the default is shown). Never the public address."))
            .build();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_SECURITY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token: the content of `DATA_DIR/admin.cookie` (created on first start, mode 0600), or of the node's `--admin-token-file`.",
                    ))
                    .build(),
            ),
        );
        if let Some(RefOr::T(Schema::Object(address))) = components.schemas.get_mut("Address") {
            address.format = Some(SchemaFormat::Custom("vis-address".into()));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let admin = path.starts_with("/admin/");
            if admin {
                item.servers = Some(vec![admin_server.clone()]);
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                // `keep` takes an empty body as `{}`.
                if path == "/admin/chain/deep-forks/keep"
                    && let Some(RefOr::T(body)) = op.request_body.as_mut()
                {
                    body.required = Some(Required::False);
                }
                if admin {
                    op.security = Some(vec![SecurityRequirement::new(ADMIN_SECURITY, Vec::<String>::new())]);
                    let gate = [
                        (
                            "401",
                            "`unauthorized`: no `Authorization: Bearer <token>`, or a wrong token (with `WWW-Authenticate: Bearer`).",
                        ),
                        (
                            "403",
                            "`forbidden_origin`: the request carries an `Origin` header (a web page) that is not allowed.",
                        ),
                        ("415", "`unsupported_media_type`: a body that is not `application/json`."),
                        (
                            "421",
                            "`wrong_host`: the Host is not the admin address, localhost, 127.0.0.1 or [::1] with the admin port, nor an allowed host (DNS rebinding).",
                        ),
                    ];
                    for (status, description) in gate {
                        op.responses.responses.entry(status.into()).or_insert_with(|| error(description));
                    }
                }
                let responses = &mut op.responses.responses;
                if !admin {
                    let retry_after = || {
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
                            .description(Some("Seconds to wait before trying again."))
                            .build()
                    };
                    let limited = |description: String| -> RefOr<Response> {
                        let mut r = error_response(&description);
                        r.headers.insert("Retry-After".into(), RefOr::T(retry_after()));
                        RefOr::T(r)
                    };
                    responses.entry("429".into()).or_insert_with(|| {
                        limited(
                            "`rate_limited`: over this client address's request rate (`--api-rate-per-ip`, `--api-burst-per-ip`); wait `Retry-After` seconds.".into(),
                        )
                    });
                    let unavailable = "`busy`: the node serves `--api-max-in-flight` requests already; `timeout`: not answered within `--api-timeout-secs`. Both carry `Retry-After`.";
                    if path != "/v1/ws" {
                        let merged = match responses.get("503") {
                            Some(RefOr::T(r)) => format!("{} {unavailable}", r.description),
                            _ => unavailable.to_string(),
                        };
                        responses.insert("503".into(), limited(merged));
                    }
                }
                responses.entry("4XX".into()).or_insert_with(|| {
                    error("Any other client error, e.g. `method_not_allowed` (405), `body_too_large` (413), `bad_request`.")
                });
                responses
                    .entry("5XX".into())
                    .or_insert_with(|| error("`internal`: a fault of the node itself (storage); see its logs."));
            }
        }
    }
}

/// `ErrorBody`'s `$ref`.
trait Reference {
    fn reference() -> utoipa::openapi::Ref;
}

impl<T: ToSchema> Reference for T {
    fn reference() -> utoipa::openapi::Ref {
        utoipa::openapi::Ref::from_schema_name(T::name())
    }
}

#[cfg(test)]
mod tests {
    use super::super::admin::BanInfoSchema;
    use super::super::network::PeerInfoSchema;
    use super::*;

    /// The mirror schemas accept exactly what the `p2p` types serialize to.
    #[test]
    fn mirrors_match_p2p_types() {
        let peer = crate::p2p::PeerInfo {
            peer_id: "12D3KooW".into(),
            addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
            direction: "inbound".into(),
            score: 1.5,
            client: Some("vision-node/0.1.0".into()),
            height: Some(7),
        };
        let json = serde_json::to_value(&peer).unwrap();
        let mirror: PeerInfoSchema = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&mirror).unwrap(), json);
        let ban = crate::p2p::BanInfo { peer_id: "12D3KooW".into(), until_unix_ms: 5 };
        let json = serde_json::to_value(&ban).unwrap();
        let mirror: BanInfoSchema = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&mirror).unwrap(), json);
    }

    #[test]
    fn every_operation_documents_errors() {
        let doc = serde_json::to_value(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 12, "{:?}", paths.keys());
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "servers") {
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("4XX") && responses.contains_key("5XX"), "{method} {path}");
            }
        }
    }
}
