//! Stream store (filled by the storage issue).
