//! Artifacts: named, typed, versioned sets of files (datasets, models, code) with aliases,
//! references to external storage, and lineage through the runs that log and use them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Most entries in one version.
pub const MAX_ENTRIES: usize = 100_000;

/// `POST /api/v1/projects/{project}/artifacts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArtifactRequest {
    /// Unique in the project: 1 to 128 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// `model`, `dataset`, `file`, `code` or any other word.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Any JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PATCH /api/v1/projects/{project}/artifacts/{name}`: fields given are replaced, except
/// `metadata`, which is merged (RFC 7396 JSON merge patch: `null` removes a key).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArtifactRequest {
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Metadata keys to change, merged into the stored metadata (`null` removes a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    /// New tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `PATCH /api/v1/projects/{project}/artifacts/{name}/versions/{version}`: a version's
/// content never changes, its description and metadata may.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersionRequest {
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Metadata keys to change, merged into the stored metadata (RFC 7396 JSON merge patch:
    /// `null` removes a key, nested objects merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
}

/// An artifact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// Name, unique in the project.
    pub name: String,
    /// Project it belongs to.
    pub project: crate::ProjectName,
    /// Type word.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    pub description: String,
    /// JSON object.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Tags.
    pub tags: Vec<String>,
    /// Finalized versions.
    pub version_count: i64,
    /// The newest version (`v3`), if any.
    pub latest_version: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One entry of a manifest sent by a client: either uploaded content (`sha256` and `size`)
/// or a reference to external storage (`ref`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// Relative path inside the artifact, `/`-separated.
    pub path: String,
    /// SHA-256 of the bytes, lowercase hex (uploaded content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes (optional for references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `s3://`, `gs://` or `https://` URI the entry points at instead of uploaded bytes.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// For references: a checksum of the target (an ETag, or `sha256:<hex>` which `get`
    /// verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// `POST /api/v1/projects/{project}/artifacts/{name}/versions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionRequest {
    /// Type of the artifact; required when the artifact does not exist yet, and must match
    /// when it does.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Description of this version.
    #[serde(default)]
    pub description: String,
    /// Metadata of this version (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    /// The run that logged it (recorded as lineage: that run's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<crate::RunId>,
    /// Custom aliases to point at the version once it is finalized.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The manifest.
    pub entries: Vec<EntrySpec>,
}

/// Whether a version can still receive bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Waiting for uploads, then `POST …/drafts/{id}/commit`.
    Pending,
    /// Finalized and immutable.
    Committed,
}

/// A version of an artifact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactVersion {
    /// Server id (the draft id while pending).
    pub id: i64,
    /// Artifact name.
    pub artifact: String,
    /// Project.
    pub project: crate::ProjectName,
    /// Artifact type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `v1`, `v2`, …; null while pending.
    pub version: Option<String>,
    /// Pending or committed.
    pub state: VersionState,
    /// SHA-256 of the manifest (see `manifest_digest`).
    pub digest: String,
    /// Free text.
    pub description: String,
    /// JSON object.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The run that logged it.
    pub run: Option<crate::RunId>,
    /// Entries in the manifest.
    pub file_count: i64,
    /// Sum of the entries' sizes.
    pub total_size: i64,
    /// Aliases pointing here (`latest` included when it is the newest).
    pub aliases: Vec<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// Bytes the server lacks, and where to send them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlobUpload {
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where to `PUT` the bytes (relative to the server's base URL unless absolute).
    pub upload_url: String,
    /// After the `PUT`, `POST` here (empty body) so the server verifies the upload; present
    /// when the server keeps content in object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_url: Option<String>,
    /// For large content in object storage: the parts to send (see `FileTicket.parts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<crate::files::UploadPart>>,
    /// Seconds the URL stays valid.
    pub expires_in: i64,
}

/// Answer to creating a version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateVersionResponse {
    /// The version: committed when nothing had to be uploaded, pending otherwise.
    pub version: ArtifactVersion,
    /// False when the manifest equals the latest version's, which is returned unchanged.
    pub created: bool,
    /// Content to upload before committing the draft (each digest once).
    pub uploads: Vec<BlobUpload>,
}

/// One file of a version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactFile {
    /// Relative path.
    pub path: String,
    /// SHA-256 (uploaded content).
    pub sha256: Option<String>,
    /// MD5 (uploaded content).
    pub md5: Option<String>,
    /// Size in bytes (0 for references of unknown size).
    pub size: u64,
    /// The URI of a reference.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// Checksum of a reference, as given.
    pub checksum: Option<String>,
    /// Short-lived URL to `GET` uploaded bytes (when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// An alias and where it points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactAlias {
    /// The alias.
    pub alias: String,
    /// `v3`.
    pub version: String,
    /// Who set it last (null for `latest`).
    pub updated_by: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

/// `PUT /api/v1/projects/{project}/artifacts/{name}/aliases/{alias}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAliasRequest {
    /// `v3`, `3`, or another alias.
    pub version: String,
}

/// `POST …/versions/{version}/use`: a run used this version as an input.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseVersionRequest {
    /// Run id.
    pub run: crate::RunId,
}

/// A run in lineage answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineageRun {
    /// Run id.
    pub id: crate::RunId,
    /// Run name.
    pub name: String,
    /// Project.
    pub project: crate::ProjectName,
    /// Run state.
    pub state: String,
}

/// A node of the lineage graph.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineageNode {
    /// `run:<id>` or `artifact:<project>/<name>:v<n>`.
    pub id: String,
    /// `run` or `artifact_version`.
    pub kind: String,
    /// What to show: a run's name, or `name:v3`.
    pub label: String,
    /// Project.
    pub project: crate::ProjectName,
    /// Hops from the version asked about: negative upstream, positive downstream.
    pub depth: i32,
}

/// An edge of the lineage graph.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineageEdge {
    /// Node id.
    pub from: String,
    /// Node id.
    pub to: String,
    /// `produced` (run → version) or `used` (version → run).
    pub relation: String,
}

/// Lineage of one version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lineage {
    /// The run that logged it.
    pub produced_by: Option<LineageRun>,
    /// Runs that used it.
    pub used_by: Vec<LineageRun>,
    /// Upstream and downstream graph, as far as the caller may see.
    pub nodes: Vec<LineageNode>,
    /// Edges between those nodes.
    pub edges: Vec<LineageEdge>,
}

/// `GET /api/v1/runs/{id}/artifacts`: what a run used and produced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunArtifacts {
    /// Versions the run used.
    pub used: Vec<ArtifactVersion>,
    /// Versions the run logged.
    pub produced: Vec<ArtifactVersion>,
}

/// Artifact names: 1 to 128 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_artifact_name(s: &str) -> bool {
    crate::is_valid_project_name(s)
}

/// Types and aliases: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_word(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `v3` or `3` → 3.
pub fn parse_version_number(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('v').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 12 {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// One normalised manifest entry, as the digest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestItem<'a> {
    /// Uploaded content.
    Blob {
        /// Path.
        path: &'a str,
        /// SHA-256.
        sha256: &'a str,
        /// Size.
        size: u64,
    },
    /// A reference.
    Reference {
        /// Path.
        path: &'a str,
        /// URI.
        uri: &'a str,
        /// Checksum, as given.
        checksum: &'a str,
        /// Size, 0 if unknown.
        size: u64,
    },
}

impl ManifestItem<'_> {
    fn path(&self) -> &str {
        match self {
            ManifestItem::Blob { path, .. } | ManifestItem::Reference { path, .. } => path,
        }
    }
}

/// SHA-256 of a manifest: entries sorted by path, one line each —
/// `path NUL sha256 NUL size LF` for content, `path NUL ref:uri NUL checksum NUL size LF` for
/// references. Equal manifests have equal digests whatever order the entries came in.
pub fn manifest_digest(items: &mut [ManifestItem<'_>]) -> String {
    items.sort_by(|a, b| a.path().cmp(b.path()));
    let mut h = Sha256::new();
    for it in items.iter() {
        match it {
            ManifestItem::Blob { path, sha256, size } => {
                h.update(path.as_bytes());
                h.update([0]);
                h.update(sha256.as_bytes());
                h.update([0]);
                h.update(size.to_string().as_bytes());
            }
            ManifestItem::Reference {
                path,
                uri,
                checksum,
                size,
            } => {
                h.update(path.as_bytes());
                h.update(b"\0ref:");
                h.update(uri.as_bytes());
                h.update([0]);
                h.update(checksum.as_bytes());
                h.update([0]);
                h.update(size.to_string().as_bytes());
            }
        }
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        assert_eq!(parse_version_number("v3"), Some(3));
        assert_eq!(parse_version_number("12"), Some(12));
        for bad in ["v", "v0", "latest", "v1a", "", "-1", "v99999999999999"] {
            assert_eq!(parse_version_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn manifest_digest_ignores_order_and_sees_every_field() {
        let a = ManifestItem::Blob {
            path: "a.txt",
            sha256: "00",
            size: 1,
        };
        let b = ManifestItem::Reference {
            path: "b",
            uri: "s3://x/y",
            checksum: "",
            size: 0,
        };
        let d1 = manifest_digest(&mut [a.clone(), b.clone()]);
        let d2 = manifest_digest(&mut [b.clone(), a.clone()]);
        assert_eq!(d1, d2);
        let c = ManifestItem::Blob {
            path: "a.txt",
            sha256: "00",
            size: 2,
        };
        assert_ne!(d1, manifest_digest(&mut [c, b]));
        assert_eq!(d1.len(), 64);
    }
}
