//! Parse errors.

/// Why a byte string is not a usable JMA telegram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input is empty or only whitespace.
    #[error("empty input: expected a JMA XML telegram")]
    Empty,
    /// The bytes are not UTF-8 (JMA telegrams always are).
    #[error("not UTF-8: invalid byte sequence at offset {offset}")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The XML is not well-formed (includes truncated documents).
    #[error("malformed XML at byte {position}: {message}")]
    Xml {
        /// Approximate byte offset.
        position: u64,
        /// What is wrong.
        message: String,
    },
    /// Well-formed XML, but not a JMA disaster-prevention telegram.
    #[error("not a JMA telegram: {0}")]
    NotJma(String),
    /// A required header element is absent.
    #[error("JMA telegram lacks required element {0}")]
    Missing(&'static str),
    /// A header element has a value outside the JMA specification.
    #[error("JMA telegram has invalid {field}: {value:?} ({expected})")]
    Invalid {
        /// Element path, e.g. `Head/InfoType`.
        field: &'static str,
        /// The offending value (truncated to 80 characters).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl ParseError {
    pub(crate) fn invalid(field: &'static str, value: &str, expected: &'static str) -> Self {
        ParseError::Invalid { field, value: value.chars().take(80).collect(), expected }
    }
}
