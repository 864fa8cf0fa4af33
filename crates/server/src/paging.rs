//! The opaque `next_cursor` of every paged list: the keyset position after the last item
//! (a name, an id, `at:id`, or a run search's `o:offset`), as base64url text. Clients pass it
//! back unchanged; anything else is a 400 that says so.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{ApiError, ApiResult};

/// The cursor standing for `position`.
pub fn cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position.as_bytes())
}

/// The position a cursor stands for.
pub fn position(c: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(c.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid(c))
}

/// The position of a cursor, read as `T` (an id, an offset …).
pub fn position_as<T: std::str::FromStr>(c: &str) -> ApiResult<T> {
    position(c)?.parse().map_err(|_| invalid(c))
}

/// The position of a cursor of the form `a:b`, both numbers.
pub fn position_pair(c: &str) -> ApiResult<(i64, i64)> {
    position(c)?
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| invalid(c))
}

/// The 400 for a cursor this server did not give out.
pub fn invalid(c: &str) -> ApiError {
    ApiError::invalid(format!(
        "invalid cursor {c:?}: pass back a next_cursor value unchanged"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        assert_eq!(position(&cursor("my-project")).unwrap(), "my-project");
        assert_eq!(position_as::<i64>(&cursor("42")).unwrap(), 42);
        assert_eq!(position_pair(&cursor("123:45")).unwrap(), (123, 45));
        for bad in ["nonsense!", "%%", &cursor("x:1"), &cursor("12")] {
            assert!(position_pair(bad).is_err(), "{bad}");
        }
        assert!(position_as::<i64>(&cursor("abc")).is_err());
        let err = position("!").unwrap_err().to_string();
        assert!(
            err.contains("pass back a next_cursor value unchanged"),
            "{err}"
        );
    }
}
