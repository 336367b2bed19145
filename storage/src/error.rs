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
    /// What is on disk is not what the store wrote (torn or flipped bytes, a bad index).
    #[error("corrupt data in {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    /// An earlier I/O error left the store in an unknown state: it accepts nothing until it
    /// is reopened (and recovered from disk).
    #[error("store in {path} failed on an earlier I/O error; reopen it")]
    Failed { path: PathBuf },
    /// The caller broke the store's contract (not the disk's fault, not a store bug).
    #[error("store misuse: {what}")]
    Misuse { what: String },
    /// The store's own bookkeeping contradicts itself: a bug in the store, not the disk.
    #[error("store invariant broken: {what}")]
    Internal { what: String },
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

    /// A broken invariant: asserts in debug builds (tests find it), an error in release.
    pub(crate) fn internal(what: impl Into<String>) -> Self {
        let what = what.into();
        debug_assert!(false, "store invariant broken: {what}");
        StoreError::Internal { what }
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
