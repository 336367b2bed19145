use std::path::PathBuf;

/// Everything a store operation can fail with. Limit errors leave the store unchanged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("message of {size} bytes exceeds the maximum message size of {max}")]
    MessageTooLarge { size: u64, max: u64 },
    #[error("maximum messages exceeded ({max}) and the discard policy is `new`")]
    MaxMsgs { max: u64 },
    #[error("maximum bytes exceeded ({max}) and the discard policy is `new`")]
    MaxBytes { max: u64 },
    #[error("maximum messages per subject exceeded ({max}) and the discard policy is `new`")]
    MaxMsgsPerSubject { max: u64 },
    #[error("subject is empty or longer than {max} bytes")]
    BadSubject { max: usize },
    #[error("headers of {size} bytes are too large")]
    HeadersTooLarge { size: usize },
    #[error("corrupt data in {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("background fdatasync failed in {path}: {reason}; the store accepts no more writes")]
    SyncFailed { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }

    /// Limit errors reject one message; the others are store-wide failures.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            StoreError::MessageTooLarge { .. }
                | StoreError::MaxMsgs { .. }
                | StoreError::MaxBytes { .. }
                | StoreError::MaxMsgsPerSubject { .. }
                | StoreError::BadSubject { .. }
                | StoreError::HeadersTooLarge { .. }
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
