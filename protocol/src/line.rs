//! The control line at the front of a buffer, shared by the parsers of server ops: found
//! incrementally (bytes already scanned are not scanned again) and bounded by the control-line
//! limit.

use crate::parser::ProtocolError;

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// Where one complete line lies in the buffer.
pub(crate) struct Line {
    /// Bytes up to and including the `\n`.
    pub len: usize,
    /// Where the line's text ends (before `\r\n` or `\n`).
    pub end: usize,
    /// Where the op name ends.
    pub op_end: usize,
    /// Where the arguments start.
    pub rest: usize,
}

#[derive(Debug, Default)]
pub(crate) struct LineScanner {
    scanned: usize,
}

impl LineScanner {
    /// The line at the front of `buf`, if complete; more than `max` bytes without one is an
    /// error.
    pub fn next(&mut self, buf: &[u8], max: usize) -> Result<Option<Line>, ProtocolError> {
        let from = self.scanned.min(buf.len());
        let Some(nl) = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i) else {
            self.scanned = buf.len();
            if buf.len() > max {
                return Err(ProtocolError::MaxControlLine {
                    len: buf.len(),
                    max,
                });
            }
            return Ok(None);
        };
        self.scanned = 0;
        let end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let line = &buf[..end];
        let op_end = line.iter().position(|&b| is_ws(b)).unwrap_or(line.len());
        let rest = op_end + line[op_end..].iter().take_while(|&&b| is_ws(b)).count();
        Ok(Some(Line {
            len: nl + 1,
            end,
            op_end,
            rest,
        }))
    }

    pub fn reset(&mut self) {
        self.scanned = 0;
    }
}
