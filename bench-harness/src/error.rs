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
    /// Another thread of the same run failed first (its error is the one to report).
    #[error("aborted: another connection of the run failed")]
    Aborted,
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("server process: {0}")]
    Process(String),
    /// A JetStream API call the server answered with an error (its description), or not at all.
    #[error("JetStream: {0}")]
    JetStream(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// The error to report for a run whose threads returned `results`: the first that is not
/// [`BenchError::Aborted`] (the others stopped because of it).
pub fn root_cause<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    let mut ok = Vec::with_capacity(results.len());
    let mut aborted = None;
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(BenchError::Aborted) => aborted = Some(BenchError::Aborted),
            Err(e) => return Err(e),
        }
    }
    match aborted {
        Some(e) => Err(e),
        None => Ok(ok),
    }
}

/// Both sides' results, or the first error of either that is not [`BenchError::Aborted`].
pub fn both<A, B>(a: Vec<Result<A>>, b: Vec<Result<B>>) -> Result<(Vec<A>, Vec<B>)> {
    match (root_cause(a), root_cause(b)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(BenchError::Aborted), Err(e)) | (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_that_stopped_the_run_is_reported_not_the_aborts_it_caused() {
        let pubs: Vec<Result<u32>> = vec![Ok(1), Err(BenchError::Aborted)];
        let subs: Vec<Result<u32>> = vec![Err(BenchError::Closed)];
        assert!(matches!(both(pubs, subs), Err(BenchError::Closed)));
        let pubs: Vec<Result<u32>> = vec![
            Err(BenchError::Aborted),
            Err(BenchError::Timeout("t".into())),
        ];
        assert!(matches!(root_cause(pubs), Err(BenchError::Timeout(_))));
        let only_aborts: Vec<Result<u32>> = vec![Err(BenchError::Aborted)];
        assert!(matches!(
            both(only_aborts, vec![Ok(2u32)]),
            Err(BenchError::Aborted)
        ));
        let ok = both(
            vec![Ok::<u32, BenchError>(1)],
            vec![Ok::<u32, BenchError>(2)],
        );
        assert!(matches!(ok, Ok((a, b)) if a == [1] && b == [2]));
    }
}
