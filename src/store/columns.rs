//! Typed columns. An enum is stored by name; `Stored` keeps a name this build does not
//! know as text, so a row that cannot be read fails closed where it is used (a token
//! of an unknown type authenticates nothing) instead of failing the whole query.

use std::str::FromStr;

/// An enum column: a known value, or the unreadable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored<T> {
    Known(T),
    Unreadable(String),
}

impl<T> Stored<T> {
    /// The value, when it could be read.
    pub fn known(&self) -> Option<&T> {
        match self {
            Stored::Known(v) => Some(v),
            Stored::Unreadable(_) => None,
        }
    }
}

impl<T: FromStr> From<String> for Stored<T> {
    fn from(text: String) -> Self {
        match text.parse() {
            Ok(v) => Stored::Known(v),
            Err(_) => Stored::Unreadable(text),
        }
    }
}

impl<T: Copy> Stored<T> {
    pub fn get(&self) -> Option<T> {
        self.known().copied()
    }
}
