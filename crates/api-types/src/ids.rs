//! Names and ids that carry their own rules: a value of these types has been checked, so code
//! that takes one never checks it again. On the wire each is a plain string; a string that
//! breaks the rule is refused where it is parsed (a path segment, a query parameter, a JSON
//! field) with a message that says what the value must look like.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The id of a run: 8 characters of `[a-z0-9]`, unique on a server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "ab12cd34")]
pub struct RunId(String);

/// The name of a project: 1 to 128 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "mnist")]
pub struct ProjectName(String);

/// A string that is not a valid [`RunId`] or [`ProjectName`]; its `Display` is the message
/// the caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    kind: IdKind,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Run,
    Project,
}

impl InvalidId {
    /// The refused value, as given.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            IdKind::Run => write!(
                f,
                "invalid run id {:?}: run ids are 8 characters of a-z and 0-9",
                self.value
            ),
            IdKind::Project => write!(
                f,
                "invalid project name {:?}: use 1 to 128 characters of letters, digits, '.', '_' or '-'",
                self.value
            ),
        }
    }
}

impl std::error::Error for InvalidId {}

const RUN_ID_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

impl RunId {
    /// How many run ids there are (36⁸): pass a number below it to [`RunId::from_number`].
    pub const SPACE: u64 = 36u64.pow(8);

    /// Checks `s` against the rule.
    pub fn parse(s: &str) -> Result<RunId, InvalidId> {
        if is_valid_run_id(s) {
            Ok(RunId(s.to_string()))
        } else {
            Err(InvalidId {
                kind: IdKind::Run,
                value: s.to_string(),
            })
        }
    }

    /// The run id that stands for `n` (taken modulo [`RunId::SPACE`]): each number below the
    /// space gives a different id, so a uniform random number gives a uniform random id.
    pub fn from_number(n: u64) -> RunId {
        let mut n = n % Self::SPACE;
        let mut id = [0u8; 8];
        for c in id.iter_mut().rev() {
            *c = RUN_ID_ALPHABET[(n % 36) as usize];
            n /= 36;
        }
        RunId(id.iter().map(|&b| b as char).collect())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ProjectName {
    /// Checks `s` against the rule.
    pub fn parse(s: &str) -> Result<ProjectName, InvalidId> {
        if is_valid_project_name(s) {
            Ok(ProjectName(s.to_string()))
        } else {
            Err(InvalidId {
                kind: IdKind::Project,
                value: s.to_string(),
            })
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ids of runs: 8 characters of `[a-z0-9]`.
pub fn is_valid_run_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Project names: 1 to 128 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_project_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

macro_rules! string_newtype {
    ($ty:ident) => {
        impl TryFrom<String> for $ty {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<$ty, InvalidId> {
                $ty::parse(&s)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<$ty, InvalidId> {
                $ty::parse(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        // Read-only access to the text: nothing reached through `&str` can break the rule.
        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_newtype!(RunId);
string_newtype!(ProjectName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids() {
        assert!(RunId::parse("ab12cd34").is_ok());
        for bad in ["AB12cd34", "ab12cd3", "ab12cd3_", "ab12cd345", ""] {
            let err = RunId::parse(bad).unwrap_err();
            assert_eq!(err.value(), bad);
            assert!(
                err.to_string().contains("8 characters of a-z and 0-9"),
                "{err}"
            );
        }
        assert_eq!(RunId::from_number(0).as_str(), "aaaaaaaa");
        assert_eq!(RunId::from_number(RunId::SPACE - 1).as_str(), "99999999");
        assert_eq!(RunId::from_number(RunId::SPACE), RunId::from_number(0));
        assert_ne!(RunId::from_number(1), RunId::from_number(36));
    }

    #[test]
    fn project_names() {
        assert!(ProjectName::parse("mnist-v2_final.1").is_ok());
        assert!(ProjectName::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a b", "a/b", &"a".repeat(129), "é"] {
            let err = ProjectName::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid project name"), "{err}");
        }
    }

    #[test]
    fn the_wire_form_is_a_plain_string_and_bad_ones_are_refused_with_the_rule() {
        let id: RunId = serde_json::from_str("\"ab12cd34\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"ab12cd34\"");
        let err = serde_json::from_str::<RunId>("\"AB\"").unwrap_err();
        assert!(
            err.to_string().contains("run ids are 8 characters"),
            "{err}"
        );
        let err = serde_json::from_str::<ProjectName>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("invalid project name"), "{err}");
    }
}
