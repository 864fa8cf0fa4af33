//! The S3-compatible backend (AWS S3, MinIO, R2, Ceph …), spoken directly over HTTP with
//! Signature Version 4: the server signs its own requests (HEAD, GET, DELETE, copy, list) and
//! hands clients presigned URLs, so content travels between client and bucket without
//! passing through the server.
//!
//! Keys: `<prefix>/sha256/ab/<digest>` for content, `<prefix>/uploads/<unix-secs>-<random>`
//! for uploads waiting to be verified.
//!
//! Hand-written rather than an SDK on purpose: the handful of calls above need ~700 lines,
//! where the S3 SDKs bring hundreds of crates and a slow build; the signing is checked against
//! AWS's published SigV4 examples and the whole backend against a real S3-protocol server.

use std::time::Duration;

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use md5::Md5;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{BlobError, ReadBack, StoredBlob};

/// Largest object S3 takes in one PUT or one copy; also the largest part.
pub const MAX_SINGLE_PART: u64 = 5 * 1024 * 1024 * 1024;
/// Most parts of a multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Part size of the server's own multipart copies (at most `max_single_copy`).
const COPY_PART: u64 = 1024 * 1024 * 1024;

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Endpoint URL for S3-compatible services (`http://minio:9000`); None means AWS.
    pub endpoint: Option<String>,
    /// The endpoint as clients reach it, when it differs from the one the server uses (e.g.
    /// `https://minio.example.com` outside, `http://minio:9000` inside): presigned URLs are
    /// signed for it. None signs them for `endpoint`.
    pub public_endpoint: Option<String>,
    /// Region (`us-east-1` unless the service says otherwise).
    pub region: String,
    /// Address the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key`.
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
    /// Files larger than this are uploaded in parts, several at a time.
    pub multipart_threshold: u64,
    /// Size of those parts (at least 5 MiB; raised for files that would need over 10,000).
    pub part_size: u64,
    /// Objects larger than this are copied into place in parts (S3 copies at most 5 GiB at once).
    pub max_single_copy: u64,
}

impl S3Config {
    /// Default multipart threshold: 512 MiB.
    pub const MULTIPART_THRESHOLD: u64 = 512 * 1024 * 1024;
    /// Default part size: 64 MiB.
    pub const PART_SIZE: u64 = 64 * 1024 * 1024;

    /// Part size for an object of `size` bytes.
    pub fn part_size_for(&self, size: u64) -> u64 {
        self.part_size
            .max(size.div_ceil(MAX_PARTS))
            .max(5 * 1024 * 1024)
    }
}

impl S3Config {
    /// Parses `s3://bucket/prefix`.
    pub fn parse_url(url: &str) -> Result<(String, String), String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }
}

/// The S3 backend.
#[derive(Debug)]
pub struct S3Blobs {
    cfg: S3Config,
    http: reqwest::Client,
    /// `scheme://host[:port]` requests go to.
    origin: String,
    /// The Host header value.
    host: String,
    /// Path before the key: `/bucket` (path style) or empty.
    bucket_path: String,
    /// `scheme://host[:port]` and Host of the URLs handed to clients.
    public_origin: String,
    public_host: String,
}

/// `scheme://host[:port]` and the Host header for an endpoint URL and the bucket.
fn origin_and_host(endpoint: &str, cfg: &S3Config) -> Result<(String, String), String> {
    let (scheme, hostport) = endpoint
        .trim_end_matches('/')
        .split_once("://")
        .ok_or_else(|| format!("S3 endpoint {endpoint:?} is not a URL"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "S3 endpoint {endpoint:?} must be http:// or https://"
        ));
    }
    if hostport.contains('/') {
        return Err(format!("S3 endpoint {endpoint:?} must not have a path"));
    }
    let host = if cfg.path_style {
        hostport.to_string()
    } else {
        format!("{}.{hostport}", cfg.bucket)
    };
    Ok((format!("{scheme}://{host}"), host))
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it; `/` kept when `keep_slash`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    /// RFC 3986's unreserved characters, the only ones SigV4 leaves unescaped.
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
    utf8_percent_encode(s, if keep_slash { PATH } else { UNRESERVED }).to_string()
}

fn io(e: impl std::fmt::Display) -> BlobError {
    BlobError::Io(std::io::Error::other(e.to_string()))
}

impl S3Blobs {
    /// A client for the bucket (no request is made yet).
    pub fn new(cfg: S3Config) -> Result<S3Blobs, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", cfg.region));
        let (origin, host) = origin_and_host(&endpoint, &cfg)?;
        let (public_origin, public_host) = match &cfg.public_endpoint {
            Some(p) => origin_and_host(p, &cfg).map_err(|e| format!("public {e}"))?,
            None => (origin.clone(), host.clone()),
        };
        let bucket_path = if cfg.path_style {
            format!("/{}", cfg.bucket)
        } else {
            String::new()
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the S3 client: {e}"))?;
        Ok(S3Blobs {
            origin,
            host,
            bucket_path,
            public_origin,
            public_host,
            http,
            cfg,
        })
    }

    /// The settings.
    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// The object key of stored content.
    pub fn content_key(&self, digest: &str) -> String {
        self.key(&format!("sha256/{}/{digest}", &digest[..2]))
    }

    /// A fresh key for an upload waiting to be verified.
    pub fn staging_key(&self) -> String {
        self.key(&format!(
            "uploads/{}-{}",
            OffsetDateTime::now_utc().unix_timestamp(),
            crate::auth::keys::random_hex(12)
        ))
    }

    fn key(&self, rest: &str) -> String {
        if self.cfg.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.cfg.prefix)
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}/{}", self.bucket_path, uri_encode(key, true))
    }

    fn scope(&self, now: OffsetDateTime) -> (String, String, String) {
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let stamp = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.cfg.region);
        (date, stamp, scope)
    }

    fn signature(&self, date: &str, stamp: &str, scope: &str, canonical: &str) -> String {
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let k = hmac(
            format!("AWS4{}", self.cfg.secret_access_key).as_bytes(),
            date,
        );
        let k = hmac(&k, &self.cfg.region);
        let k = hmac(&k, "s3");
        let k = hmac(&k, "aws4_request");
        hex::encode(hmac(&k, &to_sign))
    }

    fn canonical_query(q: &[(String, String)]) -> String {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        pairs.sort();
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// A presigned URL for `method` on `key`, valid for `expires` seconds.
    pub fn presign(&self, method: &str, key: &str, expires: u64) -> String {
        self.presign_with(method, key, &[], expires)
    }

    /// A presigned URL to upload part `number` of multipart upload `upload_id`.
    pub fn presign_part(&self, key: &str, upload_id: &str, number: u64, expires: u64) -> String {
        self.presign_with(
            "PUT",
            key,
            &[
                ("partNumber".to_string(), number.to_string()),
                ("uploadId".to_string(), upload_id.to_string()),
            ],
            expires,
        )
    }

    fn presign_with(
        &self,
        method: &str,
        key: &str,
        extra: &[(String, String)],
        expires: u64,
    ) -> String {
        let now = OffsetDateTime::now_utc();
        let (date, stamp, scope) = self.scope(now);
        let mut q = vec![
            (
                "X-Amz-Algorithm".to_string(),
                "AWS4-HMAC-SHA256".to_string(),
            ),
            (
                "X-Amz-Credential".to_string(),
                format!("{}/{scope}", self.cfg.access_key_id),
            ),
            ("X-Amz-Date".to_string(), stamp.clone()),
            ("X-Amz-Expires".to_string(), expires.to_string()),
            ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
        ];
        if let Some(t) = &self.cfg.session_token {
            q.push(("X-Amz-Security-Token".to_string(), t.clone()));
        }
        q.extend(extra.iter().cloned());
        let path = self.path(key);
        let query = Self::canonical_query(&q);
        // Clients use these URLs, so they are signed for the host clients reach.
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
            self.public_host
        );
        let sig = self.signature(&date, &stamp, &scope, &canonical);
        format!("{}{path}?{query}&X-Amz-Signature={sig}", self.public_origin)
    }

    /// A request signed in its headers (payload unsigned).
    fn request(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &[(String, String)],
        extra: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let now = OffsetDateTime::now_utc();
        let (date, stamp, scope) = self.scope(now);
        let path = if key.is_empty() {
            format!("{}/", self.bucket_path)
        } else {
            self.path(key)
        };
        let query_s = Self::canonical_query(query);
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
            ("x-amz-date".into(), stamp.clone()),
        ];
        if let Some(t) = &self.cfg.session_token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        for (k, v) in extra {
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical = format!(
            "{}\n{path}\n{query_s}\n{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD",
            method.as_str()
        );
        let sig = self.signature(&date, &stamp, &scope, &canonical);
        let url = if query_s.is_empty() {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}?{query_s}", self.origin)
        };
        let mut req = self.http.request(method, url).header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
                self.cfg.access_key_id
            ),
        );
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            req = req.header(k.as_str(), v.as_str());
        }
        req
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, BlobError> {
        let resp = req
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .map_err(|e| io(format!("object storage unreachable ({what}): {e}")))?;
        Ok(resp)
    }

    async fn expect_ok(&self, resp: reqwest::Response, what: &str) -> Result<String, BlobError> {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() || body.contains("<Error>") {
            return Err(io(format!(
                "object storage refused {what}: {status} {}",
                xml_value(&body, "Message").unwrap_or_else(|| body.chars().take(200).collect())
            )));
        }
        Ok(body)
    }

    /// Size of an object, or None when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, BlobError> {
        let resp = self
            .send(self.request(reqwest::Method::HEAD, key, &[], &[]), "HEAD")
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(io(format!("object storage answered {s} to HEAD {key}"))),
        }
    }

    /// Whether the bucket answers (for readiness checks).
    pub async fn check(&self) -> Result<(), BlobError> {
        let q = [
            ("list-type".to_string(), "2".to_string()),
            ("max-keys".to_string(), "1".to_string()),
        ];
        let resp = self
            .send(self.request(reqwest::Method::GET, "", &q, &[]), "list")
            .await?;
        self.expect_ok(resp, "a bucket listing").await.map(|_| ())
    }

    /// Deletes an object (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let resp = self
            .send(
                self.request(reqwest::Method::DELETE, key, &[], &[]),
                "DELETE",
            )
            .await?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(io(format!(
                "object storage answered {} to DELETE {key}",
                resp.status()
            )))
        }
    }

    /// Stores the `size` bytes of a local file under the content key of `digest` (one PUT;
    /// object storage takes at most 5 GiB that way).
    pub async fn put_file(
        &self,
        path: &std::path::Path,
        digest: &str,
        size: u64,
    ) -> Result<(), BlobError> {
        const MAX_SINGLE_PUT: u64 = 5 << 30;
        if size > MAX_SINGLE_PUT {
            return Err(BlobError::Mismatch(format!(
                "{size} bytes is more than one upload through the server can store in object \
                 storage (5 GiB); upload it with `wanllmdb` or the native API, which send parts"
            )));
        }
        let file = tokio::fs::File::open(path).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let dest = self.content_key(digest);
        let req = self
            .request(reqwest::Method::PUT, &dest, &[], &[])
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body);
        let resp = self.send(req, "PUT").await?;
        self.expect_ok(resp, "storing an upload").await?;
        Ok(())
    }

    /// Reads an upload back from its staging key: its SHA-256, MD5 and size.
    pub async fn read_back(&self, staging: &str) -> Result<ReadBack, BlobError> {
        let resp = self
            .send(self.request(reqwest::Method::GET, staging, &[], &[]), "GET")
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(BlobError::Mismatch(
                "nothing was uploaded to this URL yet; PUT the bytes first".into(),
            ));
        }
        if !resp.status().is_success() {
            return Err(io(format!(
                "object storage answered {} to GET",
                resp.status()
            )));
        }
        let mut sha = Sha256::new();
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| io(format!("reading the upload back failed: {e}")))?;
            size += chunk.len() as u64;
            sha.update(&chunk);
            md5.update(&chunk);
        }
        Ok(ReadBack {
            sha256: hex::encode(sha.finalize()),
            md5: hex::encode(md5.finalize()),
            size,
        })
    }

    /// Reads an upload back, checks it is exactly `size` bytes hashing to `digest`, and moves
    /// it to its content key (a mismatching upload is deleted).
    pub async fn verify_and_store(
        &self,
        staging: &str,
        digest: &str,
        size: u64,
    ) -> Result<StoredBlob, BlobError> {
        let got = self.read_back(staging).await?;
        if let Some(m) = got.mismatch(digest, size) {
            self.delete(staging).await?;
            return Err(BlobError::Mismatch(m));
        }
        self.move_into_place(staging, digest, size).await?;
        Ok(StoredBlob { md5: Some(got.md5) })
    }

    /// Moves verified bytes from a staging key to the content key of `digest` (kept as they
    /// are when that content is already stored), then deletes the staging object.
    pub async fn move_into_place(
        &self,
        staging: &str,
        digest: &str,
        size: u64,
    ) -> Result<(), BlobError> {
        let dest = self.content_key(digest);
        if self.head(&dest).await? != Some(size) {
            let source = format!("/{}/{}", self.cfg.bucket, uri_encode(staging, true));
            if size > self.cfg.max_single_copy {
                self.copy_in_parts(&source, &dest, size).await?;
            } else {
                let resp = self
                    .send(
                        self.request(
                            reqwest::Method::PUT,
                            &dest,
                            &[],
                            &[("x-amz-copy-source", source)],
                        ),
                        "copy",
                    )
                    .await?;
                self.expect_ok(resp, "copying an upload into place").await?;
            }
        }
        self.delete(staging).await
    }

    /// Starts a multipart upload; its upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, BlobError> {
        let q = [("uploads".to_string(), String::new())];
        let resp = self
            .send(
                self.request(reqwest::Method::POST, key, &q, &[]),
                "multipart start",
            )
            .await?;
        let body = self.expect_ok(resp, "starting a multipart upload").await?;
        xml_value(&body, "UploadId")
            .map(|id| xml_unescape(&id))
            .ok_or_else(|| io("object storage answered a multipart start without an upload id"))
    }

    /// Joins the uploaded parts (number, ETag) into the object.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u64, String)],
    ) -> Result<(), BlobError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            let etag = etag
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let q = [("uploadId".to_string(), upload_id.to_string())];
        let resp = self
            .send(
                self.request(reqwest::Method::POST, key, &q, &[]).body(xml),
                "multipart completion",
            )
            .await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() || body.contains("<Error>") {
            return Err(BlobError::Mismatch(format!(
                "the parts could not be joined: {}",
                xml_value(&body, "Message").unwrap_or_else(|| status.to_string())
            )));
        }
        Ok(())
    }

    /// Abandons a multipart upload and its parts.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), BlobError> {
        let q = [("uploadId".to_string(), upload_id.to_string())];
        let resp = self
            .send(
                self.request(reqwest::Method::DELETE, key, &q, &[]),
                "multipart abort",
            )
            .await?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(io(format!(
                "object storage answered {} to a multipart abort",
                resp.status()
            )))
        }
    }

    /// Copies an object larger than one copy allows, in ranges.
    async fn copy_in_parts(&self, source: &str, dest: &str, size: u64) -> Result<(), BlobError> {
        let id = self.create_multipart(dest).await?;
        let mut parts = Vec::new();
        let mut start = 0;
        let mut number = 1;
        while start < size {
            let end = (start + COPY_PART.min(self.cfg.max_single_copy)).min(size) - 1;
            let q = [
                ("partNumber".to_string(), number.to_string()),
                ("uploadId".to_string(), id.clone()),
            ];
            let headers = [
                ("x-amz-copy-source", source.to_string()),
                ("x-amz-copy-source-range", format!("bytes={start}-{end}")),
            ];
            let resp = self
                .send(
                    self.request(reqwest::Method::PUT, dest, &q, &headers),
                    "part copy",
                )
                .await?;
            let body = match self.expect_ok(resp, "copying a part into place").await {
                Ok(b) => b,
                Err(e) => {
                    let _ = self.abort_multipart(dest, &id).await;
                    return Err(e);
                }
            };
            let etag = xml_value(&body, "ETag")
                .map(|e| xml_unescape(&e))
                .unwrap_or_default();
            parts.push((number, etag));
            start = end + 1;
            number += 1;
        }
        if let Err(e) = self.complete_multipart(dest, &id, &parts).await {
            let _ = self.abort_multipart(dest, &id).await;
            return Err(e);
        }
        Ok(())
    }

    /// Deletes uploads older than `max_age_secs` that were never verified; returns the bytes
    /// freed.
    pub async fn remove_stale_uploads(&self, max_age_secs: u64) -> Result<u64, BlobError> {
        let prefix = self.key("uploads/");
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut token: Option<String> = None;
        let mut freed = 0;
        loop {
            let mut q = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), prefix.clone()),
            ];
            if let Some(t) = &token {
                q.push(("continuation-token".to_string(), t.clone()));
            }
            let resp = self
                .send(self.request(reqwest::Method::GET, "", &q, &[]), "list")
                .await?;
            let body = self.expect_ok(resp, "a listing of uploads").await?;
            for item in body.split("<Contents>").skip(1) {
                let (Some(key), Some(size)) = (xml_value(item, "Key"), xml_value(item, "Size"))
                else {
                    continue;
                };
                let key = xml_unescape(&key);
                if now - key_time(&key).unwrap_or(now) > max_age_secs as i64 {
                    self.delete(&key).await?;
                    freed += size.parse::<u64>().unwrap_or(0);
                }
            }
            token = if xml_value(&body, "IsTruncated").as_deref() == Some("true") {
                xml_value(&body, "NextContinuationToken").map(|t| xml_unescape(&t))
            } else {
                None
            };
            if token.is_none() {
                break;
            }
        }
        // Multipart uploads never completed keep their parts until aborted.
        let q = [
            ("uploads".to_string(), String::new()),
            ("prefix".to_string(), prefix.clone()),
        ];
        let resp = self
            .send(
                self.request(reqwest::Method::GET, "", &q, &[]),
                "multipart list",
            )
            .await?;
        let body = self
            .expect_ok(resp, "a listing of multipart uploads")
            .await?;
        for item in body.split("<Upload>").skip(1) {
            let (Some(key), Some(id)) = (xml_value(item, "Key"), xml_value(item, "UploadId"))
            else {
                continue;
            };
            let key = xml_unescape(&key);
            if now - key_time(&key).unwrap_or(now) > max_age_secs as i64 {
                self.abort_multipart(&key, &xml_unescape(&id)).await?;
            }
        }
        Ok(freed)
    }
}

/// When a staging key was made (`…/uploads/<unix-secs>-<random>`).
fn key_time(key: &str) -> Option<i64> {
    key.rsplit('/').next()?.split('-').next()?.parse().ok()
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> S3Blobs {
        S3Blobs::new(S3Config {
            bucket: "examplebucket".into(),
            prefix: String::new(),
            endpoint: None,
            public_endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            multipart_threshold: S3Config::MULTIPART_THRESHOLD,
            part_size: S3Config::PART_SIZE,
            max_single_copy: MAX_SINGLE_PART,
        })
        .unwrap()
    }

    /// The signing chain against the worked example of AWS's Signature Version 4
    /// documentation (GET /test.txt with a Range header, 2013-05-24).
    #[test]
    fn signature_matches_the_documented_example() {
        let s = store();
        let canonical = "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let sig = s.signature(
            "20130524",
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            canonical,
        );
        assert_eq!(
            sig,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn urls_and_keys() {
        assert_eq!(
            S3Config::parse_url("s3://bucket/a/b/").unwrap(),
            ("bucket".into(), "a/b".into())
        );
        assert!(S3Config::parse_url("s3:///x").is_err());
        assert!(S3Config::parse_url("gs://x").is_err());
        assert_eq!(uri_encode("a b/c+d", true), "a%20b/c%2Bd");
        let s = store();
        let url = s.presign("GET", "sha256/ab/abcd", 300);
        assert!(url.starts_with("https://examplebucket.s3.us-east-1.amazonaws.com/sha256/ab/abcd?X-Amz-Algorithm=AWS4-HMAC-SHA256"));
        assert!(url.contains("X-Amz-Expires=300") && url.contains("&X-Amz-Signature="));
        assert_eq!(
            xml_value("<a><Key>x&amp;y</Key></a>", "Key").as_deref(),
            Some("x&amp;y")
        );
    }
}
