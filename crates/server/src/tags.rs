//! What a tag may be, for runs, artifacts and models alike: trimmed, 1 to `max` bytes, no
//! control or bidirectional-override characters, at most 100 on one thing, duplicates dropped.

use crate::error::{ApiError, ApiResult};

/// Most tags on one run, artifact or model.
pub const MAX_TAGS: usize = 100;

/// The tags as stored: each trimmed and checked, first occurrences kept in order.
pub fn check(tags: &[String], max: usize) -> ApiResult<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(format!(
            "{} tags given; at most {MAX_TAGS} are allowed",
            tags.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim();
        if t.is_empty() || t.len() > max {
            return Err(ApiError::invalid(format!(
                "tag {t:?} must be 1 to {max} bytes"
            )));
        }
        ApiError::check_text("tag", t)?;
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn trims_dedupes_and_refuses_what_does_not_fit() {
        assert_eq!(
            check(&tags(&[" a ", "b", "a"]), 128).unwrap(),
            tags(&["a", "b"])
        );
        assert!(check(&tags(&[""]), 128).is_err());
        assert!(check(&tags(&["  "]), 128).is_err());
        assert!(check(&tags(&[&"x".repeat(65)]), 64).is_err());
        assert!(check(&tags(&[&"x".repeat(64)]), 64).is_ok());
        assert!(check(&tags(&["bad\u{202e}tag"]), 128).is_err());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert!(check(&many, 128).is_err());
        assert!(check(&many[..MAX_TAGS], 128).is_ok());
    }
}
