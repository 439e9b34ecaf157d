//! Document names: `runs/exp42`, 1 to [`MAX_NAME_SEGMENTS`] segments of letters, digits and
//! `-_.~`, none starting with a dot or equal to a [`RESERVED_SEGMENTS`] word, at most
//! [`MAX_NAME_BYTES`] bytes in all.

/// The longest document name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// The most `/`-separated segments in a document name.
pub const MAX_NAME_SEGMENTS: usize = 8;

/// Segments that name the parts of a document in its URLs, so no name may hold them.
pub const RESERVED_SEGMENTS: [&str; 12] = [
    "sources",
    "export.html",
    "json_item",
    "events",
    "models",
    "doc",
    "views",
    "streamvis",
    "ws",
    "autoload.js",
    "metadata",
    "share",
];

/// Why a document name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than [`MAX_NAME_BYTES`].
    #[error("a document name has 1 to {MAX_NAME_BYTES} bytes, not {0}")]
    Length(usize),
    /// More than [`MAX_NAME_SEGMENTS`] segments.
    #[error("a document name has at most {MAX_NAME_SEGMENTS} segments")]
    Segments,
    /// A segment with other characters, empty, or starting with a dot.
    #[error("bad segment {segment:?} in document name {name:?}: use letters, digits and -_.~, not starting with a dot")]
    Segment {
        /// The segment.
        segment: String,
        /// The whole name.
        name: String,
    },
    /// A segment that is one of [`RESERVED_SEGMENTS`].
    #[error("{0:?} is reserved and cannot be part of a document name")]
    Reserved(String),
}

/// Checks a document name against the rules above.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(NameError::Length(name.len()));
    }
    let segments: Vec<&str> = name.split('/').collect();
    if segments.len() > MAX_NAME_SEGMENTS {
        return Err(NameError::Segments);
    }
    for seg in segments {
        let valid = !seg.is_empty()
            && !seg.starts_with('.')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
        if !valid {
            return Err(NameError::Segment {
                segment: seg.to_owned(),
                name: name.to_owned(),
            });
        }
        if RESERVED_SEGMENTS.contains(&seg) {
            return Err(NameError::Reserved(seg.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name("runs/exp42"), Ok(()));
        assert_eq!(check_name("a.b-c_d~e"), Ok(()));
        assert_eq!(check_name(""), Err(NameError::Length(0)));
        assert!(matches!(check_name("a//b"), Err(NameError::Segment { .. })));
        assert!(matches!(
            check_name(".hidden"),
            Err(NameError::Segment { .. })
        ));
        assert!(matches!(check_name("a b"), Err(NameError::Segment { .. })));
        assert_eq!(
            check_name("runs/sources"),
            Err(NameError::Reserved("sources".into()))
        );
        assert_eq!(check_name("a/b/c/d/e/f/g/h/i"), Err(NameError::Segments));
        assert_eq!(
            check_name(&"x".repeat(MAX_NAME_BYTES + 1)),
            Err(NameError::Length(MAX_NAME_BYTES + 1))
        );
    }
}
