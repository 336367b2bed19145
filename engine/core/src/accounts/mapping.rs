//! Subject mapping on import: the tokens a source pattern's wildcards matched are carried, in
//! order, into the wildcards of the destination pattern (`foo.*.>` → `bar.*.>`).

use bytes::{BufMut, Bytes, BytesMut};
use tachyon_protocol::subject;

use crate::piece::Piece;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("mapping {from:?} to {to:?}: the wildcards do not line up")]
    Mismatch { from: String, to: String },
}

/// A mapping from one subject space into another; `None` destination means "same subject".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectMap {
    pub from: Bytes,
    to: Option<Bytes>,
}

impl SubjectMap {
    pub fn identity(from: Bytes) -> SubjectMap {
        SubjectMap { from, to: None }
    }

    /// Checks that `to` has the same wildcards as `from`, in the same order.
    pub fn new(from: Bytes, to: Bytes) -> Result<SubjectMap, MappingError> {
        let wild = |p: &[u8]| -> Vec<u8> {
            subject::tokens(p)
                .filter_map(|t| match t {
                    b"*" => Some(b'*'),
                    b">" => Some(b'>'),
                    _ => None,
                })
                .collect()
        };
        if wild(&from) != wild(&to) {
            return Err(MappingError::Mismatch {
                from: String::from_utf8_lossy(&from).into_owned(),
                to: String::from_utf8_lossy(&to).into_owned(),
            });
        }
        if from == to {
            return Ok(SubjectMap::identity(from));
        }
        Ok(SubjectMap { from, to: Some(to) })
    }

    /// A stream import's `prefix`: everything imported lands under `prefix.`.
    pub fn prefixed(from: Bytes, prefix: &str) -> SubjectMap {
        let mut to = BytesMut::with_capacity(prefix.len() + 1 + from.len());
        to.put_slice(prefix.trim_end_matches('.').as_bytes());
        to.put_u8(b'.');
        to.put_slice(&from);
        SubjectMap {
            from,
            to: Some(to.freeze()),
        }
    }

    pub fn matches(&self, subject: &[u8]) -> bool {
        subject::matches(&self.from, subject)
    }

    /// The destination pattern (what an importer subscribes to, or publishes on).
    pub fn destination(&self) -> &Bytes {
        self.to.as_ref().unwrap_or(&self.from)
    }

    /// Maps a subject that `matches`; an identity map returns it without copying (a handle on
    /// the same bytes), any other builds the new subject and takes no handle.
    pub fn apply<'a>(&self, subject: impl Into<Piece<'a>>) -> Bytes {
        let subject = subject.into();
        let Some(to) = &self.to else {
            return subject.to_bytes();
        };
        let mut captured: Vec<&[u8]> = Vec::new();
        let mut subj = subject::tokens(&subject);
        let mut tail: Option<Vec<&[u8]>> = None;
        for pt in subject::tokens(&self.from) {
            match pt {
                b">" => {
                    tail = Some(subj.by_ref().collect());
                    break;
                }
                b"*" => captured.push(subj.next().unwrap_or(b"")),
                _ => {
                    subj.next();
                }
            }
        }
        let mut out = BytesMut::with_capacity(to.len() + subject.len());
        let mut next_capture = captured.into_iter();
        for (i, t) in subject::tokens(to).enumerate() {
            if i > 0 {
                out.put_u8(b'.');
            }
            match t {
                b"*" => out.put_slice(next_capture.next().unwrap_or(b"*")),
                b">" => {
                    let rest = tail.take().unwrap_or_default();
                    for (j, r) in rest.iter().enumerate() {
                        if j > 0 {
                            out.put_u8(b'.');
                        }
                        out.put_slice(r);
                    }
                }
                lit => out.put_slice(lit),
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn identity_shares_the_subject() {
        let m = SubjectMap::identity(b("foo.>"));
        let s = b("foo.bar");
        assert!(m.matches(&s));
        assert_eq!(m.apply(&s).as_ptr(), s.as_ptr());
    }

    #[test]
    fn wildcards_carry_over_in_order() {
        let m = SubjectMap::new(b("orders.*.new.>"), b("shop.*.created.>")).expect("valid");
        assert_eq!(m.apply(&b("orders.eu.new.a.b")), b("shop.eu.created.a.b"));
        let lit = SubjectMap::new(b("svc.time"), b("time")).expect("valid");
        assert_eq!(lit.apply(&b("svc.time")), b("time"));
    }

    #[test]
    fn prefix_puts_everything_under_it() {
        let m = SubjectMap::prefixed(b("events.>"), "a");
        assert_eq!(m.destination(), &b("a.events.>"));
        assert_eq!(m.apply(&b("events.x")), b("a.events.x"));
    }

    #[test]
    fn wildcards_must_line_up() {
        assert!(SubjectMap::new(b("a.*"), b("b.>")).is_err());
        assert!(SubjectMap::new(b("a.*.*"), b("b.*")).is_err());
    }
}
