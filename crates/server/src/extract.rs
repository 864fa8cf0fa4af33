//! Request extractors that turn every bad input into a clear JSON 4xx.

pub(crate) mod cidr;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method, Uri, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;
pub use cidr::{Cidr, canonical_ip};

/// Reads a request body up to `limit` (or the route's own, smaller limit), inflating gzip:
/// the limit counts the inflated bytes, inflation stops as soon as it is passed, and the
/// inflated bytes count against the server's body budget too.
pub async fn read_body(req: Request, limit: usize) -> Result<(Parts, Vec<u8>), ApiError> {
    use http_body_util::BodyExt;
    let (parts, mut body) = req.into_parts();
    let limit = parts
        .extensions
        .get::<crate::limits::BodyLimit>()
        .map_or(limit, |l| l.0.min(limit));
    let gzip = match parts.headers.get(header::CONTENT_ENCODING) {
        None => false,
        Some(v) => match v
            .to_str()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "gzip" | "x-gzip" => true,
            "identity" | "" => false,
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "unsupported Content-Encoding {other:?} (use gzip or none)"
                )));
            }
        },
    };
    let mut raw = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(crate::limits::body_read_error)?;
        if let Ok(data) = frame.into_data() {
            if raw.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            raw.extend_from_slice(&data);
        }
    }
    if !gzip {
        return Ok((parts, raw));
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ApiError::invalid(format!("request body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    if let Some(charge) = parts
        .extensions
        .get::<std::sync::Arc<crate::limits::Charge>>()
    {
        charge.add(out.len())?;
    }
    Ok((parts, out))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "request body is larger than the server's limit of {limit} bytes"
    ))
}

/// Parses JSON with a message that says where it went wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid("request body is empty; expected JSON"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

fn check_json_content_type(parts: &Parts) -> Result<(), ApiError> {
    match parts.headers.get(header::CONTENT_TYPE) {
        None => Ok(()),
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            let mime = v.split(';').next().unwrap_or("").trim();
            if mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json") {
                Ok(())
            } else {
                Err(ApiError::UnsupportedMediaType(format!(
                    "expected Content-Type application/json, got {v:?}"
                )))
            }
        }
    }
}

/// The bytes of a JSON request body (gzip inflated, size limited, content type checked), for
/// handlers that look at the JSON before choosing its shape.
pub async fn json_bytes(req: Request, state: &AppState) -> Result<Vec<u8>, ApiError> {
    let (parts, bytes) = read_body(req, state.config.max_body_bytes).await?;
    check_json_content_type(&parts)?;
    Ok(bytes)
}

/// Path segments, typed: a segment that breaks its type's rule (a run id, a project name) is a
/// 400 whose message states the rule, in the JSON error body every other input error has.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::Message(m) => Err(ApiError::invalid(m.clone())),
                _ => Err(ApiError::invalid(e.body_text())),
            },
            // A route whose pattern lacks the segment its handler reads: a fault here.
            Err(e) => Err(ApiError::Internal(e.body_text())),
        }
    }
}

/// A JSON request body (gzip allowed), limited in size.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Ok(JsonBody(parse_json(&json_bytes(req, state).await?)?))
    }
}

/// A body that is JSON or an HTML/OAuth2 form (`application/x-www-form-urlencoded`), as the
/// auth endpoints take.
pub struct FormOrJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for FormOrJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, bytes) = read_body(req, state.config.max_body_bytes).await?;
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct.starts_with("application/x-www-form-urlencoded") {
            serde_urlencoded::from_bytes(&bytes)
                .map(FormOrJson)
                .map_err(|e| ApiError::invalid(format!("invalid form body: {e}")))
        } else {
            check_json_content_type(&parts)?;
            parse_json(&bytes).map(FormOrJson)
        }
    }
}

/// Query-string parameters with JSON errors instead of axum's plain-text ones.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))
    }
}

/// All query pairs, in order (for repeatable parameters such as `filter`).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(QueryPairs)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))
    }
}

/// Who is calling from where, for audit rows and rate limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address: the peer, or with a trusted proxy the address it forwarded.
    pub ip: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
}

impl ClientInfo {
    /// Reads it off a request.
    pub fn from_parts(parts: &Parts) -> ClientInfo {
        ClientInfo::read(&parts.method, &parts.uri, &parts.headers, &parts.extensions)
    }

    /// Reads it off a request that has not been taken apart (in middleware).
    pub fn from_request(req: &Request) -> ClientInfo {
        ClientInfo::read(req.method(), req.uri(), req.headers(), req.extensions())
    }

    fn read(method: &Method, uri: &Uri, headers: &HeaderMap, ext: &Extensions) -> ClientInfo {
        let ip = match ext.get::<ClientIp>() {
            Some(c) => Some(c.0),
            None => ext
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| canonical_ip(c.0.ip())),
        };
        ClientInfo {
            ip: ip.map(|ip| ip.to_string()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
            method: method.to_string(),
            // Nested routers see a stripped URI; audit rows want the one the client sent.
            path: ext
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| uri.path().to_string(), |o| o.0.path().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientInfo::from_parts(parts))
    }
}

/// The server's URL as this client reaches it, without a trailing slash: the configured
/// public URL, else built from the request (`X-Forwarded-Proto` and `X-Forwarded-Host` are
/// believed only from a trusted proxy; otherwise the scheme is http and the host is `Host`).
#[derive(Debug, Clone)]
pub struct PublicBase(pub String);

impl PublicBase {
    /// An absolute URL for a path of this server (`/api/v1/...`), or `url` itself when it is
    /// already absolute (presigned object-storage URLs).
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", self.0)
        }
    }

    fn from_request(parts: &Parts, state: &AppState) -> PublicBase {
        if let Some(url) = &state.config.public_url {
            return PublicBase(url.clone());
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
                .filter(|v| !v.is_empty() && valid_authority(v))
        };
        let peer_trusted = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|c| {
                let ip = canonical_ip(c.0.ip());
                state.config.trusted_proxies.iter().any(|t| t.contains(ip))
            });
        let forwarded = |name: &str| if peer_trusted { header(name) } else { None };
        let scheme = forwarded("x-forwarded-proto")
            .filter(|p| p == "https" || p == "http")
            .unwrap_or_else(|| "http".to_string());
        let host = forwarded("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or_else(|| state.config.bind.to_string());
        PublicBase(format!("{scheme}://{host}"))
    }
}

/// A Host header value: a name or address with an optional port, nothing that could change
/// the meaning of a URL built from it.
fn valid_authority(v: &str) -> bool {
    v.len() <= 255
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}

impl FromRequestParts<AppState> for PublicBase {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(PublicBase::from_request(parts, state))
    }
}

/// The client's address, once per request, as [`resolve_client_ip`] found it.
#[derive(Debug, Clone, Copy)]
struct ClientIp(IpAddr);

/// Decides the client's address and keeps it on the request for [`ClientInfo`]: the peer,
/// unless the peer is a trusted proxy (then the forwarding headers name the client).
pub fn resolve_client_ip(req: &mut Request, trusted: &[Cidr]) {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let ip = client_ip(peer, req.headers(), trusted);
        req.extensions_mut().insert(ClientIp(ip));
    }
}

/// Walks `X-Forwarded-For` (or, without it, `Forwarded: for=`) from the right, skipping
/// trusted hops: the first untrusted address is the client; when every hop is trusted, the
/// leftmost. Headers from an untrusted peer are ignored, so they cannot be spoofed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical_ip(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut hops = forwarded_chain(headers);
    let mut client = peer;
    while let Some(hop) = hops.pop() {
        // A hop that is not an address (`unknown`, an obfuscated name) ends what can be
        // believed: the proxy that wrote it is the last known client.
        let Some(ip) = parse_hop(&hop) else {
            return client;
        };
        client = canonical_ip(ip);
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// The hops of the forwarding header, leftmost (the original client) first.
fn forwarded_chain(headers: &HeaderMap) -> Vec<String> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}").to_string())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_string())
            .collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| v.trim().trim_matches('"').to_string())
                })
                // An element without `for=` does not say who sent it.
                .unwrap_or_default()
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Some(rest) = hop.strip_prefix('[') {
        return rest
            .split_once(']')?
            .0
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn parses_networks_and_single_addresses() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = " 192.0.2.7 ".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6_all: Cidr = "::/0".parse().unwrap();
        assert!(v6_all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_mapped_forms_are_ipv4() {
        let mapped_net: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped_net.to_string(), "10.0.0.0/8");
        let v4: Cidr = "127.0.0.1/32".parse().unwrap();
        assert!(v4.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(canonical_ip(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(canonical_ip(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[test]
    fn rejects_bad_entries_with_a_reason() {
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/-1",
            "10.0.0/8",
            "proxy.local",
            "10.0.0.0/8/8",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{bad}: {err}");
        }
        assert!(
            "10.0.0.0/x"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            "fd00::/200"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 128")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
        let trusted = cidrs(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(ip("::ffff:198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn walks_forwarded_for_from_the_right_past_trusted_hops() {
        let trusted = cidrs(&["10.0.0.0/8", "fd00::/8"]);
        let peer = ip("10.0.0.2");
        // The client may prepend anything; only the hops the trusted proxies added count.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.9")]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("203.0.113.5"));
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5, fd00::7"),
        ]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("203.0.113.5"));
        // Every hop trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("10.1.1.1"));
        // No header: the peer.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
        // Ports and brackets are tolerated; mapped addresses become IPv4.
        let h = headers(&[("x-forwarded-for", "[2001:db8::5]:4711, 203.0.113.7:80")]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("203.0.113.7"));
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.8")]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("203.0.113.8"));
    }

    #[test]
    fn garbage_in_the_chain_stops_the_walk_at_the_last_trusted_hop() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.5, unknown, 10.0.0.9")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.9"));
        let h = headers(&[("x-forwarded-for", "")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn reads_forwarded_for_when_there_is_no_x_forwarded_for() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.3;by=10.0.0.2",
        )]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=_hidden, for=10.0.0.3")]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("10.0.0.3"));
        // X-Forwarded-For wins when both are present.
        let h = headers(&[
            ("forwarded", "for=198.51.100.9"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("203.0.113.5"));
    }
}
