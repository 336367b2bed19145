//! Where a setting was written and what is wrong with it: errors name file, line and column like
//! nats-server's.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a value was written: errors name file, line and column like nats-server does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: Option<Arc<PathBuf>>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}:{}:{}", p.display(), self.line, self.col),
            None => write!(f, "{}:{}", self.line, self.col),
        }
    }
}

/// A configuration error with where it was found. A syntax error (the file does not parse)
/// displays in nats-server's wording, `Parse error on line N: '...'`, which client test
/// harnesses look for; [`ConfigError::located`] keeps the file and column for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub pos: Pos,
    pub msg: String,
    pub syntax: bool,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.syntax {
            write!(f, "Parse error on line {}: '{}'", self.pos.line, self.msg)
        } else {
            write!(f, "{}: {}", self.pos, self.msg)
        }
    }
}

impl ConfigError {
    /// A value that parsed but means nothing valid (unknown key, wrong type, bad range).
    pub fn at(pos: &Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            pos: pos.clone(),
            msg: msg.into(),
            syntax: false,
        }
    }

    /// Text that is not nats-server's config format.
    pub fn syntax(pos: &Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            syntax: true,
            ..ConfigError::at(pos, msg)
        }
    }

    /// `FILE:LINE:COL: message`, whatever the kind.
    pub fn located(&self) -> String {
        format!("{}: {}", self.pos, self.msg)
    }
}
