//! Files attached to runs, stored once per content (SHA-256) on the server.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest file path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// A file the client wants to attach, described by its content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Relative path, `/`-separated (e.g. `checkpoints/last.pt`).
    pub path: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// `POST /api/v1/runs/{id}/files`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutFilesRequest {
    /// The files (at most 10,000 per request).
    pub files: Vec<FileSpec>,
}

/// What happens to a file of a put request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Attached already: the server holds these bytes for this project.
    Stored,
    /// Send the bytes with `PUT upload_url`; the file is attached when they arrive intact.
    Upload,
}

/// The answer for one file of a put request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileTicket {
    /// Normalised path.
    pub path: String,
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Stored, or upload needed.
    pub status: FileStatus,
    /// Where to `PUT` the bytes (relative to the server's base URL unless absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// After the `PUT`, `POST` here (empty body) so the server verifies and records the
    /// upload; present when the server keeps content in object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_url: Option<String>,
    /// For large files in object storage: send these byte ranges to their URLs instead
    /// (`upload_url` is then the first part's), then `POST complete_url` with the ETags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<UploadPart>>,
    /// Seconds the upload URL stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// One part of a multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadPart {
    /// Part number, from 1.
    pub number: u64,
    /// First byte of the file in this part.
    pub offset: u64,
    /// Bytes in this part.
    pub size: u64,
    /// Where to `PUT` them; the answer's `ETag` header goes into the completion.
    pub url: String,
}

/// `POST …/complete` of a multipart upload: every part with the ETag its `PUT` answered.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteUploadRequest {
    /// The parts, in order.
    #[serde(default)]
    pub parts: Vec<CompletedPart>,
}

/// A part sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    /// Part number.
    pub number: u64,
    /// The `ETag` header of the part's `PUT` answer.
    pub etag: String,
}

/// Answer to `POST /api/v1/runs/{id}/files`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PutFilesResponse {
    /// One ticket per requested file, in order.
    pub files: Vec<FileTicket>,
}

/// A file attached to a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunFile {
    /// Relative path.
    pub path: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// MD5 of the bytes, lowercase hex.
    pub md5: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was attached (RFC 3339).
    pub created_at: String,
    /// Who attached it.
    pub created_by: Option<String>,
    /// Short-lived URL to `GET` the bytes (only on single-file requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// `POST /api/v1/runs/{id}/files/upload-url`: an upload URL for a file known by name only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadUrlRequest {
    /// Relative path the file will have in the run, e.g. `model.pth`.
    pub path: String,
}

/// A short-lived absolute URL that moves the bytes of one file, with no other credentials.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferUrl {
    /// The file's path.
    pub path: String,
    /// Absolute URL.
    pub url: String,
    /// The HTTP method to use with it: `PUT` (the raw bytes as the body) or `GET`.
    pub method: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// Seconds until then.
    pub expires_in: i64,
    /// Size in bytes (downloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// SHA-256 of the bytes (downloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// MD5 of the bytes (downloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// What a name-first upload URL received (the answer to the `PUT`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StagedFile {
    /// The file's path.
    pub path: String,
    /// Bytes received.
    pub size: u64,
    /// Their SHA-256.
    pub sha256: String,
    /// Their MD5.
    pub md5: String,
}

/// `POST /api/v1/runs/{id}/files/register`: attaches a file uploaded to a name-first upload
/// URL, after checking that what arrived is what the client meant to send.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFileRequest {
    /// The path the upload URL was made for.
    pub path: String,
    /// The size the client sent, in bytes.
    pub size: u64,
    /// MD5 of the bytes, when the client computed it.
    #[serde(default)]
    pub md5: Option<String>,
    /// SHA-256 of the bytes, when the client computed it.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// `POST /api/v1/blobs/bundle`: many small downloads in one answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// Tokens of download URLs (the part after `/api/v1/blobs/`), at most 1,000, each file at
    /// most 4 MiB and 64 MiB in all.
    pub tokens: Vec<String>,
}

/// Answer to `POST /api/v1/blobs/batch`: one item per uploaded blob, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchUploadResult {
    /// The uploads.
    pub items: Vec<BatchItem>,
}

/// The outcome of one upload of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// SHA-256 the upload was signed for.
    pub sha256: String,
    /// Stored and recorded.
    pub stored: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answer to `POST /api/v1/admin/blobs/gc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    /// Nothing was deleted; the figures say what would be.
    pub dry_run: bool,
    /// Blobs deleted (or that would be).
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of abandoned partial uploads removed.
    pub partial_bytes: u64,
}

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Normalises a file path: relative, `/`-separated, no `..`, no NUL, control characters or
/// backslashes; `.` and empty segments are dropped. The error says what is wrong.
pub fn normalize_path(p: &str) -> Result<String, String> {
    if p.is_empty() {
        return Err("the path is empty".into());
    }
    if p.len() > MAX_PATH_LEN {
        return Err(format!("the path is longer than {MAX_PATH_LEN} bytes"));
    }
    if p.contains('\\') {
        return Err(format!("{p:?}: use / between directories, not \\"));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(format!("{p:?} contains a NUL or control character"));
    }
    if p.starts_with('/') || (p.len() >= 2 && p.as_bytes()[1] == b':') {
        return Err(format!("{p:?} is absolute; paths are relative"));
    }
    let mut parts = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(format!("{p:?} contains '..'")),
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(format!("{p:?} names no file"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalize_path("a/./b//c.txt").unwrap(), "a/b/c.txt");
        assert_eq!(normalize_path("./x").unwrap(), "x");
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a\\b",
            "a\0b",
            "C:/x",
            ".",
            "a/\n",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_path(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex("abc"));
    }
}
