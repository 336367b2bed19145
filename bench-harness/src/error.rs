use tachyon_protocol::ProtocolError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("server said -ERR {0}")]
    Server(String),
    #[error("server closed the connection")]
    Closed,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("verification failed: {0}")]
    Verify(String),
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("server process: {0}")]
    Process(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
