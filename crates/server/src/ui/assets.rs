//! Static files of the web UI (our stylesheet and modules, the vendored libraries), embedded in
//! release builds and read from disk in debug builds. They are served under
//! `/static/<hash>/<path>`, where the hash covers every file, so pages always name the current
//! bundle and browsers may keep each URL for a year. Modules import each other by relative
//! paths, which stay inside the same hashed folder.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "ui/static/"]
struct Static;

/// The URL prefix of the current bundle, e.g. `/static/3f9a1c0b7d2e`.
pub fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| format!("/static/{}", bundle_hash()))
}

/// A short digest of every file's name and bytes.
fn bundle_hash() -> String {
    let mut names: Vec<String> = Static::iter().map(|n| n.into_owned()).collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        if let Some(file) = Static::get(&name) {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(Sha256::digest(&file.data));
        }
    }
    hex::encode(&h.finalize()[..6])
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}

/// `GET /static/{hash}/{*path}`.
pub async fn serve(Path((hash, path)): Path<(String, String)>) -> Response {
    let Some(file) = Static::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    // An old page may ask for an older bundle: it gets today's file, but only briefly cached.
    let current = prefix().ends_with(&hash);
    let cache = if current && !cfg!(debug_assertions) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Every file of the bundle with its size, for the size check.
pub fn files() -> Vec<(String, Vec<u8>)> {
    Static::iter()
        .filter_map(|n| Static::get(&n).map(|f| (n.into_owned(), f.data.into_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored libraries are exactly the files their SHA256SUMS lists.
    #[test]
    fn vendored_files_match_their_checksums() {
        let sums = Static::get("vendor/SHA256SUMS").expect("vendor/SHA256SUMS");
        let sums = String::from_utf8(sums.data.into_owned()).unwrap();
        let mut listed = 0;
        for line in sums.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, name) = line.split_once("  ").expect("sha256sum format");
            let file = Static::get(&format!("vendor/{name}"))
                .unwrap_or_else(|| panic!("{name} is listed but missing"));
            assert_eq!(hex::encode(Sha256::digest(&file.data)), sum, "{name}");
            listed += 1;
        }
        let vendored = Static::iter()
            .filter(|n| {
                n.starts_with("vendor/")
                    && !["vendor/SHA256SUMS", "vendor/README.md"].contains(&&**n)
            })
            .count();
        assert_eq!(listed, vendored, "every vendored file is listed");
    }

    /// What a first visit downloads stays within the budget of 150 KB gzipped.
    #[test]
    fn shipped_js_and_css_fit_the_budget() {
        use std::io::Write;
        let mut total = 0;
        for (name, data) in files() {
            if name.ends_with(".js") || name.ends_with(".css") {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&data).unwrap();
                total += gz.finish().unwrap().len();
            }
        }
        assert!(total > 30_000, "the libraries are there: {total}");
        assert!(total <= 150_000, "JS + CSS gzipped: {total} bytes");
    }

    #[test]
    fn prefix_is_stable_and_short() {
        assert_eq!(prefix(), prefix());
        assert_eq!(prefix().len(), "/static/".len() + 12);
    }
}
