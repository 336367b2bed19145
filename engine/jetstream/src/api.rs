//! The JSON of the JetStream API as nats-server 2.15 writes and reads it: response and request
//! shapes, times, publish acks, and (in [`gojson`]) Go's `encoding/json` quirks that clients can
//! see (escaping, field matching, the text after "invalid JSON: ").
//!
//! Field order, presence and spelling follow nats-server's Go structs, because clients and
//! their test suites compare raw replies. Where the reference prints its own version or API
//! level, the caller passes Tachyon's (it claims 2.12.0, level 2), so nothing here is baked in.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::StreamConfig;
use crate::errors::{self, ApiError};

pub const TYPE_ACCOUNT_INFO: &str = "io.nats.jetstream.api.v1.account_info_response";
pub const TYPE_STREAM_CREATE: &str = "io.nats.jetstream.api.v1.stream_create_response";
pub const TYPE_STREAM_UPDATE: &str = "io.nats.jetstream.api.v1.stream_update_response";
pub const TYPE_STREAM_INFO: &str = "io.nats.jetstream.api.v1.stream_info_response";
pub const TYPE_STREAM_NAMES: &str = "io.nats.jetstream.api.v1.stream_names_response";
pub const TYPE_STREAM_LIST: &str = "io.nats.jetstream.api.v1.stream_list_response";
pub const TYPE_STREAM_DELETE: &str = "io.nats.jetstream.api.v1.stream_delete_response";
pub const TYPE_STREAM_PURGE: &str = "io.nats.jetstream.api.v1.stream_purge_response";
pub const TYPE_MSG_GET: &str = "io.nats.jetstream.api.v1.stream_msg_get_response";
pub const TYPE_MSG_DELETE: &str = "io.nats.jetstream.api.v1.stream_msg_delete_response";

/// Page size of `STREAM.NAMES` (nats-server's `JSApiNamesLimit`).
pub const NAMES_LIMIT: usize = 1024;
/// Page size of `STREAM.LIST` (`JSApiListLimit`).
pub const LIST_LIMIT: usize = 256;
/// Most subjects one `STREAM.INFO` reply lists (`JSMaxSubjectDetails`).
pub const MAX_SUBJECT_DETAILS: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------

/// Go's zero `time.Time` as JSON shows it; nats-server prints it for "no message yet".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Unix seconds of Go's zero time (0001-01-01T00:00:00Z).
const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// A `time.Time` as Go keeps it for JSON: an instant plus the UTC offset it was written with,
/// because nats-server echoes a client's `opt_start_time` with the client's own offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GoTime {
    pub unix_secs: i64,
    pub nanos: u32,
    /// East of UTC, in seconds; 0 prints as `Z`.
    pub offset_secs: i32,
}

impl GoTime {
    /// Go's zero `time.Time` (`0001-01-01T00:00:00Z`).
    pub const ZERO: GoTime = GoTime {
        unix_secs: ZERO_TIME_UNIX,
        nanos: 0,
        offset_secs: 0,
    };

    /// The UTC time of a Unix nanosecond stamp.
    pub fn from_unix_nanos(n: i64) -> GoTime {
        GoTime {
            unix_secs: n.div_euclid(1_000_000_000),
            nanos: n.rem_euclid(1_000_000_000) as u32,
            offset_secs: 0,
        }
    }

    /// Unix nanoseconds, saturating outside 1677..2262 (Go leaves those undefined).
    pub fn unix_nanos(&self) -> i64 {
        let n = i128::from(self.unix_secs) * 1_000_000_000 + i128::from(self.nanos);
        i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
    }

    pub fn is_zero(&self) -> bool {
        self.unix_secs == ZERO_TIME_UNIX && self.nanos == 0
    }

    /// RFC 3339 with nanoseconds, trailing zeros of the fraction dropped, as Go's
    /// `MarshalJSON` writes it (without the quotes).
    pub fn format(&self) -> String {
        let local = self.unix_secs.saturating_add(i64::from(self.offset_secs));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            y,
            m,
            d,
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        if self.offset_secs == 0 {
            s.push('Z');
        } else {
            let off = self.offset_secs.unsigned_abs() / 60;
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            s.push_str(&format!("{sign}{:02}:{:02}", off / 60, off % 60));
        }
        s
    }

    /// Parses what Go's `time.Parse(time.RFC3339, s)` accepts (seconds fraction after `.` or
    /// `,`, a one-digit hour), failing with Go's own error text, which nats-server puts after
    /// "invalid JSON: ".
    pub fn parse(s: &str) -> Result<GoTime, String> {
        parse_rfc3339(s)
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A Unix nanosecond stamp as Go's `time.Time` JSON in UTC. 0 stands for "no time" and
/// prints as Go's zero time, because that is how Tachyon's store reports an empty stream's
/// first/last timestamps and how nats-server shows them.
pub fn rfc3339_nano(unix_nanos: i64) -> String {
    if unix_nanos == 0 {
        return ZERO_TIME.to_string();
    }
    GoTime::from_unix_nanos(unix_nanos).format()
}

/// The inverse of [`rfc3339_nano`] for times in requests: any RFC 3339 offset is accepted,
/// Go's zero time gives 0; `None` when Go would refuse the text.
pub fn parse_rfc3339_nano(s: &str) -> Option<i64> {
    let t = GoTime::parse(s).ok()?;
    Some(if t.is_zero() { 0 } else { t.unix_nanos() })
}

/// Serde adapter for Unix-nanosecond `i64` fields that Go declares `time.Time`.
pub mod go_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339_nano(*n))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339_nano(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("bad time {s:?}")))
    }
}

/// Serde adapter for `[]byte` fields: Go writes them as standard padded base64.
mod go_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(m: u32, y: i64) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's `time.quote`: ASCII kept (with `"` and `\` escaped), anything else as `\x..` bytes.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// Go's `getnum`: one or two leading digits (`fixed` demands two).
fn getnum(v: &[u8], fixed: bool) -> Option<(u32, usize)> {
    let d0 = *v.first().filter(|c| c.is_ascii_digit())?;
    match v.get(1).filter(|c| c.is_ascii_digit()) {
        Some(d1) => Some((u32::from(d0 - b'0') * 10 + u32::from(d1 - b'0'), 2)),
        None if fixed => None,
        None => Some((u32::from(d0 - b'0'), 1)),
    }
}

fn parse_rfc3339(s: &str) -> Result<GoTime, String> {
    let b = s.as_bytes();
    let rest = |i: usize| String::from_utf8_lossy(b.get(i..).unwrap_or_default()).into_owned();
    let cannot = |i: usize, elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            time_quote(s),
            time_quote(RFC3339),
            time_quote(&rest(i)),
            time_quote(elem)
        )
    };
    let range = |what: &str| format!("parsing time {}: {what} out of range", time_quote(s));
    let lit = |i: usize, c: u8| -> Result<usize, String> {
        if b.get(i) == Some(&c) {
            Ok(i + 1)
        } else {
            Err(cannot(i, std::str::from_utf8(&[c]).unwrap_or_default()))
        }
    };

    let mut i = 0;
    if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
        return Err(cannot(0, "2006"));
    }
    let year = b[..4]
        .iter()
        .fold(0i64, |a, c| a * 10 + i64::from(c - b'0'));
    i += 4;
    i = lit(i, b'-')?;
    let (month, w) = getnum(&b[i..], true).ok_or_else(|| cannot(i, "01"))?;
    i += w;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    i = lit(i, b'-')?;
    let (day, w) = getnum(&b[i..], true).ok_or_else(|| cannot(i, "02"))?;
    i += w;
    i = lit(i, b'T')?;
    let (hour, w) = getnum(&b[i..], false).ok_or_else(|| cannot(i, "15"))?;
    i += w;
    if hour >= 24 {
        return Err(range("hour"));
    }
    i = lit(i, b':')?;
    let (min, w) = getnum(&b[i..], true).ok_or_else(|| cannot(i, "04"))?;
    i += w;
    if min >= 60 {
        return Err(range("minute"));
    }
    i = lit(i, b':')?;
    let (sec, w) = getnum(&b[i..], true).ok_or_else(|| cannot(i, "05"))?;
    i += w;
    if sec >= 60 {
        return Err(range("second"));
    }
    let mut nanos = 0u32;
    if b.len() >= i + 2 && matches!(b[i], b'.' | b',') && b[i + 1].is_ascii_digit() {
        let mut n = i + 1;
        while n < b.len() && b[n].is_ascii_digit() {
            n += 1;
        }
        // Go reads at most nine digits and ignores the rest.
        let digits = &b[i + 1..n.min(i + 10)];
        let mut v = digits
            .iter()
            .fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
        for _ in digits.len()..9 {
            v *= 10;
        }
        nanos = v;
        i = n;
    }
    let offset_secs;
    if b.get(i) == Some(&b'Z') {
        offset_secs = 0;
        i += 1;
    } else {
        if b.len() < i + 6 || b[i + 3] != b':' {
            return Err(cannot(i, "Z07:00"));
        }
        let hh = getnum(&b[i + 1..i + 3], true);
        let mm = getnum(&b[i + 4..i + 6], true);
        let (Some((hh, _)), Some((mm, _))) = (hh, mm) else {
            return Err(cannot(i, "Z07:00"));
        };
        if hh > 24 {
            return Err(range("time zone offset hour"));
        }
        if mm > 60 {
            return Err(range("time zone offset minute"));
        }
        let sign = match b[i] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(cannot(i, "Z07:00")),
        };
        offset_secs = sign * (hh as i32 * 3600 + mm as i32 * 60);
        i += 6;
    }
    if i < b.len() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            time_quote(s),
            time_quote(&rest(i))
        ));
    }
    if day < 1 || day > days_in_month(month, year) {
        return Err(range("day"));
    }
    let local = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(min) * 60
        + i64::from(sec);
    Ok(GoTime {
        unix_secs: local - i64::from(offset_secs),
        nanos,
        offset_secs,
    })
}

// ---------------------------------------------------------------------------------------------
// Go's encoding/json
// ---------------------------------------------------------------------------------------------

pub mod gojson {
    //! Go's `encoding/json` as nats-server 2.15.1 runs it (built with Go 1.27, whose v1 API
    //! sits on the v2 engine). Encoding: strings escape `<`, `>`, `&`, U+2028, U+2029.
    //! Decoding: nats-server's `unmarshalRequest` loop (`json.Decoder` with
    //! `DisallowUnknownFields`, values read one after another into the same struct, so
    //! `{..} {..}` merges), falling back to plain `json.Unmarshal` when not strict. Keys match
    //! exactly or case-insensitively; the first error wins and its text is Go's, checked
    //! against the reference server:
    //! - syntax: `invalid character 'x' looking for beginning of value at offset 9` (offset =
    //!   bytes up to and including the bad character), `unexpected EOF`, and from `Unmarshal`
    //!   `unexpected end of JSON input` / `... after top-level value` without offsets;
    //! - types: `json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs
    //!   of type int64` (an array element drops "Go struct field": `into
    //!   StreamConfigRequest.subjects.0 of type string`), `json: unknown field "foo"`.

    use std::collections::BTreeMap;
    use std::io;

    use serde::Serialize;

    use super::GoTime;

    /// Strings as Go writes them; everything else is serde_json's compact output.
    struct GoFormatter;

    impl serde_json::ser::Formatter for GoFormatter {
        fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
        where
            W: ?Sized + io::Write,
        {
            let mut start = 0;
            for (i, c) in fragment.char_indices() {
                let esc = match c {
                    '<' => "\\u003c",
                    '>' => "\\u003e",
                    '&' => "\\u0026",
                    '\u{2028}' => "\\u2028",
                    '\u{2029}' => "\\u2029",
                    _ => continue,
                };
                writer.write_all(&fragment.as_bytes()[start..i])?;
                writer.write_all(esc.as_bytes())?;
                start = i + c.len_utf8();
            }
            writer.write_all(&fragment.as_bytes()[start..])
        }
    }

    /// `json.Marshal`: the bytes nats-server would send for the same value.
    pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let ok = {
            let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
            value.serialize(&mut ser).is_ok()
        };
        if !ok {
            out.clear();
        }
        out
    }

    /// Go's `%q` / `strconv.Quote` of bytes (invalid UTF-8 as `\x..`).
    pub fn quote(s: &[u8]) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        let mut rest = s;
        while let Some(&first) = rest.first() {
            match decode_rune(rest) {
                Some((c, w)) => {
                    push_escaped(&mut out, c);
                    rest = &rest[w..];
                }
                None => {
                    out.push_str(&format!("\\x{first:02x}"));
                    rest = &rest[1..];
                }
            }
        }
        out.push('"');
        out
    }

    fn decode_rune(b: &[u8]) -> Option<(char, usize)> {
        let n = match b.first()? {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return None,
        };
        let s = std::str::from_utf8(b.get(..n)?).ok()?;
        s.chars().next().map(|c| (c, n))
    }

    /// Go's `unicode.IsPrint`, closely enough for error texts (format characters, private
    /// use and non-space separators are not printable).
    fn is_print(c: char) -> bool {
        if c == ' ' {
            return true;
        }
        if c.is_control() || c.is_whitespace() {
            return false;
        }
        !matches!(c as u32,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
            | 0xFFFE | 0xFFFF | 0xE000..=0xF8FF | 0x110BD | 0x110CD | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
            | 0xF0000..=0x10FFFF)
    }

    fn push_escaped(out: &mut String, c: char) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            _ if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            _ if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }

    /// The character at `at` as Go's JSON errors show it (`'x'`, `'\x01'`, `'\xff'` for a
    /// byte that starts no valid UTF-8), and the bytes it spans.
    fn quote_char(b: &[u8], at: usize) -> (String, usize) {
        let rest = b.get(at..).unwrap_or_default();
        match decode_rune(rest) {
            Some(('\'', w)) => ("'\\''".to_string(), w),
            Some(('"', w)) => ("'\"'".to_string(), w),
            Some((c, w)) => {
                let mut s = String::from("'");
                push_escaped(&mut s, c);
                s.push('\'');
                (s, w)
            }
            None => (
                format!("'\\x{:02x}'", rest.first().copied().unwrap_or(0)),
                1,
            ),
        }
    }

    // ---- parsing ----

    /// One JSON value with its place in the body (custom Go unmarshalers see the raw text).
    #[derive(Debug)]
    pub struct Node {
        pub kind: Kind,
        pub start: usize,
        pub end: usize,
    }

    #[derive(Debug)]
    pub enum Kind {
        Null,
        Bool(bool),
        Number,
        Str(String),
        Array(Vec<Node>),
        /// Members in document order, duplicates kept (the last one wins when decoding).
        Object(Vec<(String, Node)>),
    }

    /// Go's nesting limit; the parser keeps its own stack, so any depth is safe to read.
    const MAX_DEPTH: usize = 10_000;

    /// Trees are dropped with a heap stack too: a recursive drop of 10000 levels could
    /// overflow a thread's stack.
    impl Drop for Node {
        fn drop(&mut self) {
            let mut pending = Vec::new();
            take_children(&mut self.kind, &mut pending);
            while let Some(mut n) = pending.pop() {
                take_children(&mut n.kind, &mut pending);
            }
        }
    }

    fn take_children(k: &mut Kind, out: &mut Vec<Node>) {
        match k {
            Kind::Array(items) => out.append(items),
            Kind::Object(members) => out.extend(members.drain(..).map(|(_, n)| n)),
            _ => {}
        }
    }

    enum SynErr {
        Eof,
        At(String, usize),
    }

    /// An array or object being read.
    enum Open {
        Array {
            start: usize,
            items: Vec<Node>,
        },
        Object {
            start: usize,
            members: Vec<(String, Node)>,
            key: String,
        },
    }

    struct Parser<'a> {
        b: &'a [u8],
        pos: usize,
    }

    impl<'a> Parser<'a> {
        fn new(b: &'a [u8]) -> Self {
            Parser { b, pos: 0 }
        }

        fn skip_ws(&mut self) {
            while matches!(self.b.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn peek(&self) -> Result<u8, SynErr> {
            self.b.get(self.pos).copied().ok_or(SynErr::Eof)
        }

        fn bad(&self, at: usize, context: &str) -> SynErr {
            let (q, w) = quote_char(self.b, at);
            SynErr::At(format!("invalid character {q} {context}"), at + w)
        }

        /// `"key":` of an object member.
        fn member_key(&mut self) -> Result<String, SynErr> {
            self.skip_ws();
            if self.peek()? != b'"' {
                return Err(self.bad(self.pos, "looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek()? != b':' {
                return Err(self.bad(self.pos, "after object key"));
            }
            self.pos += 1;
            Ok(key)
        }

        /// One complete value, containers read with an explicit stack.
        fn value(&mut self) -> Result<Node, SynErr> {
            let mut stack: Vec<Open> = Vec::new();
            loop {
                self.skip_ws();
                let start = self.pos;
                let kind = match self.peek()? {
                    c @ (b'{' | b'[') => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(SynErr::At("exceeded max depth".into(), start + 1));
                        }
                        self.pos += 1;
                        self.skip_ws();
                        if c == b'{' {
                            if self.peek()? == b'}' {
                                self.pos += 1;
                                Kind::Object(Vec::new())
                            } else {
                                let key = self.member_key()?;
                                stack.push(Open::Object {
                                    start,
                                    members: Vec::new(),
                                    key,
                                });
                                continue;
                            }
                        } else if self.peek()? == b']' {
                            self.pos += 1;
                            Kind::Array(Vec::new())
                        } else {
                            stack.push(Open::Array {
                                start,
                                items: Vec::new(),
                            });
                            continue;
                        }
                    }
                    b'"' => Kind::Str(self.string()?),
                    b'-' | b'0'..=b'9' => self.number()?,
                    b't' => self.literal("true", Kind::Bool(true))?,
                    b'f' => self.literal("false", Kind::Bool(false))?,
                    b'n' => self.literal("null", Kind::Null)?,
                    _ => return Err(self.bad(start, "looking for beginning of value")),
                };
                let mut done = Node {
                    kind,
                    start,
                    end: self.pos,
                };
                // Hand the finished value to its container, closing containers that end.
                loop {
                    let Some(open) = stack.last_mut() else {
                        return Ok(done);
                    };
                    self.skip_ws();
                    let next = self.peek()?;
                    match open {
                        Open::Array { items, .. } => {
                            items.push(done);
                            match next {
                                b',' => {
                                    self.pos += 1;
                                    break;
                                }
                                b']' => self.pos += 1,
                                _ => return Err(self.bad(self.pos, "after array element")),
                            }
                        }
                        Open::Object { members, key, .. } => {
                            members.push((std::mem::take(key), done));
                            match next {
                                b',' => {
                                    self.pos += 1;
                                    *key = self.member_key()?;
                                    break;
                                }
                                b'}' => self.pos += 1,
                                _ => return Err(self.bad(self.pos, "after object key:value pair")),
                            }
                        }
                    }
                    done = match stack.pop() {
                        Some(Open::Array { start, items }) => Node {
                            kind: Kind::Array(items),
                            start,
                            end: self.pos,
                        },
                        Some(Open::Object { start, members, .. }) => Node {
                            kind: Kind::Object(members),
                            start,
                            end: self.pos,
                        },
                        None => return Err(SynErr::Eof),
                    };
                }
            }
        }

        /// The escape starting at `pos`, `len` bytes of it, shown between backquotes when
        /// Go's `strconv.CanBackquote` allows, else Go-quoted.
        fn bad_escape(&self, len: usize) -> SynErr {
            let end = (self.pos + len).min(self.b.len());
            let raw = &self.b[self.pos..end];
            let shown = match std::str::from_utf8(raw) {
                Ok(r)
                    if !r.chars().any(|c| {
                        (c < ' ' && c != '\t') || c == '`' || c == '\x7f' || c == '\u{feff}'
                    }) =>
                {
                    format!("`{r}`")
                }
                _ => quote(raw),
            };
            SynErr::At(format!("invalid escape sequence {shown} in string"), end)
        }

        fn hex4(&self, at: usize) -> Option<u32> {
            let h = self.b.get(at..at + 4)?;
            let s = std::str::from_utf8(h).ok()?;
            if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(s, 16).ok()
        }

        /// A string value; invalid UTF-8 and lone surrogates become U+FFFD as in Go.
        fn string(&mut self) -> Result<String, SynErr> {
            self.pos += 1;
            let mut out: Vec<u8> = Vec::new();
            loop {
                let c = self.peek()?;
                match c {
                    b'"' => {
                        self.pos += 1;
                        break;
                    }
                    b'\\' => {
                        let esc = *self.b.get(self.pos + 1).ok_or(SynErr::Eof)?;
                        let simple = match esc {
                            b'"' => Some(b'"'),
                            b'\\' => Some(b'\\'),
                            b'/' => Some(b'/'),
                            b'b' => Some(0x08),
                            b'f' => Some(0x0c),
                            b'n' => Some(b'\n'),
                            b'r' => Some(b'\r'),
                            b't' => Some(b'\t'),
                            _ => None,
                        };
                        if let Some(s) = simple {
                            out.push(s);
                            self.pos += 2;
                            continue;
                        }
                        if esc != b'u' {
                            return Err(self.bad_escape(2));
                        }
                        if self.b.len() < self.pos + 6 {
                            return Err(SynErr::Eof);
                        }
                        let Some(u) = self.hex4(self.pos + 2) else {
                            return Err(self.bad_escape(6));
                        };
                        self.pos += 6;
                        let ch = if (0xD800..0xDC00).contains(&u) {
                            let low = (self.b.get(self.pos..self.pos + 2) == Some(b"\\u"))
                                .then(|| self.hex4(self.pos + 2))
                                .flatten()
                                .filter(|l| (0xDC00..0xE000).contains(l));
                            match low {
                                Some(l) => {
                                    self.pos += 6;
                                    char::from_u32(0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00))
                                }
                                None => None,
                            }
                        } else {
                            char::from_u32(u)
                        };
                        let ch = ch.unwrap_or('\u{FFFD}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    0x00..=0x1f => return Err(self.bad(self.pos, "in string")),
                    _ => {
                        out.push(c);
                        self.pos += 1;
                    }
                }
            }
            Ok(match String::from_utf8(out) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })
        }

        fn digits(&mut self) {
            while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }

        fn need_digit(&mut self) -> Result<(), SynErr> {
            if !self.peek()?.is_ascii_digit() {
                return Err(self.bad(self.pos, "in numeric literal"));
            }
            Ok(())
        }

        fn number(&mut self) -> Result<Kind, SynErr> {
            if self.b[self.pos] == b'-' {
                self.pos += 1;
            }
            self.need_digit()?;
            if self.b[self.pos] == b'0' {
                self.pos += 1;
            } else {
                self.digits();
            }
            if self.b.get(self.pos) == Some(&b'.') {
                self.pos += 1;
                self.need_digit()?;
                self.digits();
            }
            if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                self.need_digit()?;
                self.digits();
            }
            Ok(Kind::Number)
        }

        fn literal(&mut self, word: &str, kind: Kind) -> Result<Kind, SynErr> {
            for (i, want) in word.bytes().enumerate().skip(1) {
                let at = self.pos + i;
                let got = *self.b.get(at).ok_or(SynErr::Eof)?;
                if got != want {
                    let msg = format!("in literal {word} (expecting '{}')", want as char);
                    return Err(self.bad(at, &msg));
                }
            }
            self.pos += word.len();
            Ok(kind)
        }
    }

    // ---- decoding ----

    /// Decoding state: where in the document we are (for error texts) and the first error.
    pub struct Dec<'a> {
        body: &'a [u8],
        root: &'static str,
        /// Field names and array indexes from the root; `true` marks an index.
        path: Vec<(String, bool)>,
        allow_unknown: bool,
        err: Option<String>,
    }

    fn kind_name(n: &Node) -> &'static str {
        match n.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "bool",
            Kind::Number => "number",
            Kind::Str(_) => "string",
            Kind::Array(_) => "array",
            Kind::Object(_) => "object",
        }
    }

    impl<'a> Dec<'a> {
        /// Records an error unless an earlier one is already recorded.
        pub fn fail(&mut self, msg: String) {
            if self.err.is_none() {
                self.err = Some(msg);
            }
        }

        pub fn failed(&self) -> bool {
            self.err.is_some()
        }

        /// The value's text as written (what a Go `UnmarshalJSON` receives).
        pub fn raw(&self, n: &Node) -> &'a [u8] {
            self.body.get(n.start..n.end).unwrap_or_default()
        }

        /// Go's `UnmarshalTypeError`, with the path the v2 engine reports.
        pub fn type_err(&mut self, what: &str, go_type: &str) {
            let msg = match self.path.last() {
                None => format!("json: cannot unmarshal {what} into Go value of type {go_type}"),
                Some(&(_, is_index)) => {
                    let mut p = String::from(self.root);
                    for (seg, _) in &self.path {
                        p.push('.');
                        p.push_str(seg);
                    }
                    if is_index {
                        format!("json: cannot unmarshal {what} into {p} of type {go_type}")
                    } else {
                        format!(
                            "json: cannot unmarshal {what} into Go struct field {p} of type {go_type}"
                        )
                    }
                }
            };
            self.fail(msg);
        }

        pub fn string(&mut self, n: &Node, out: &mut String) {
            match &n.kind {
                Kind::Null => {}
                Kind::Str(s) => out.clone_from(s),
                _ => self.type_err(kind_name(n), "string"),
            }
        }

        pub fn boolean(&mut self, n: &Node, out: &mut bool) {
            match n.kind {
                Kind::Null => {}
                Kind::Bool(b) => *out = b,
                _ => self.type_err(kind_name(n), "bool"),
            }
        }

        /// A signed integer of Go type `go_type` ("int", "int64", "time.Duration").
        pub fn int(&mut self, n: &Node, out: &mut i64, go_type: &str) {
            match n.kind {
                Kind::Null => {}
                Kind::Number => {
                    let lit = String::from_utf8_lossy(self.raw(n)).into_owned();
                    match lit.parse::<i64>() {
                        Ok(v) => *out = v,
                        Err(_) => self.type_err(&format!("number {lit}"), go_type),
                    }
                }
                _ => self.type_err(kind_name(n), go_type),
            }
        }

        pub fn int32(&mut self, n: &Node, out: &mut i32) {
            let mut v = i64::from(*out);
            let before = self.failed();
            self.int(n, &mut v, "int32");
            if self.failed() && !before {
                return;
            }
            match i32::try_from(v) {
                Ok(v) => *out = v,
                Err(_) => {
                    let lit = String::from_utf8_lossy(self.raw(n)).into_owned();
                    self.type_err(&format!("number {lit}"), "int32");
                }
            }
        }

        pub fn uint(&mut self, n: &Node, out: &mut u64) {
            match n.kind {
                Kind::Null => {}
                Kind::Number => {
                    let lit = String::from_utf8_lossy(self.raw(n)).into_owned();
                    match lit.parse::<u64>() {
                        Ok(v) => *out = v,
                        Err(_) => self.type_err(&format!("number {lit}"), "uint64"),
                    }
                }
                _ => self.type_err(kind_name(n), "uint64"),
            }
        }

        /// A Go slice: null empties it, an array replaces it.
        pub fn list<T: Default>(
            &mut self,
            n: &Node,
            go_type: &str,
            out: &mut Vec<T>,
            mut elem: impl FnMut(&mut Self, &Node, &mut T),
        ) {
            match &n.kind {
                Kind::Null => out.clear(),
                Kind::Array(items) => {
                    let mut v = Vec::with_capacity(items.len());
                    for (i, it) in items.iter().enumerate() {
                        self.path.push((i.to_string(), true));
                        let mut t = T::default();
                        elem(self, it, &mut t);
                        v.push(t);
                        self.path.pop();
                    }
                    *out = v;
                }
                _ => self.type_err(kind_name(n), go_type),
            }
        }

        pub fn strings(&mut self, n: &Node, out: &mut Vec<String>) {
            self.list(n, "[]string", out, |d, v, s| d.string(v, s));
        }

        /// A Go `map[string]string`: an object adds to what is there (Go reuses the map).
        pub fn string_map(&mut self, n: &Node, out: &mut BTreeMap<String, String>) {
            match &n.kind {
                Kind::Null => out.clear(),
                Kind::Object(members) => {
                    for (k, v) in members {
                        self.path.push((k.clone(), false));
                        let mut s = String::new();
                        self.string(v, &mut s);
                        out.insert(k.clone(), s);
                        self.path.pop();
                    }
                }
                _ => self.type_err(kind_name(n), "map[string]string"),
            }
        }

        /// A `*time.Time`: null clears it.
        pub fn time(&mut self, n: &Node, out: &mut Option<GoTime>) {
            match &n.kind {
                Kind::Null => *out = None,
                Kind::Str(s) => match GoTime::parse(s) {
                    Ok(t) => *out = Some(t),
                    Err(e) => self.fail(e),
                },
                _ => self.type_err(kind_name(n), "time.Time"),
            }
        }

        /// A Go struct: each member goes to `set` under the canonical name of the field it
        /// matches (exactly, else case-insensitively); unknown members are an error unless
        /// decoding falls back to `json.Unmarshal`. Returns false when the value was null.
        pub fn object(
            &mut self,
            n: &Node,
            go_type: &str,
            fields: &[&'static str],
            mut set: impl FnMut(&mut Self, &'static str, &Node),
        ) -> bool {
            match &n.kind {
                Kind::Null => false,
                Kind::Object(members) => {
                    for (k, v) in members {
                        let field = fields.iter().find(|f| **f == k.as_str()).or_else(|| {
                            fields.iter().find(|f| {
                                f.chars()
                                    .flat_map(char::to_lowercase)
                                    .eq(k.chars().flat_map(char::to_lowercase))
                            })
                        });
                        match field {
                            Some(f) => {
                                self.path.push((k.clone(), false));
                                set(self, f, v);
                                self.path.pop();
                            }
                            None if self.allow_unknown => {}
                            None => {
                                self.fail(format!("json: unknown field {}", quote(k.as_bytes())))
                            }
                        }
                    }
                    true
                }
                _ => {
                    self.type_err(kind_name(n), go_type);
                    true
                }
            }
        }
    }

    /// Decodes a request body the way nats-server's `unmarshalRequest` does. `root` is the Go
    /// type name errors start their paths with ("StreamConfigRequest"); `decode` fills the
    /// target from one top-level value. The error is the text after "invalid JSON: ".
    pub fn decode_request<T: Default>(
        body: &[u8],
        strict: bool,
        root: &'static str,
        decode: impl Fn(&mut Dec, &Node, &mut T),
    ) -> Result<T, String> {
        match decode_stream(body, root, &decode) {
            Ok(v) => Ok(v),
            Err(e) if strict => Err(e),
            Err(_) => decode_whole(body, root, &decode),
        }
    }

    /// `json.Decoder.Decode` until EOF, every value into the same target.
    fn decode_stream<T: Default>(
        body: &[u8],
        root: &'static str,
        decode: &impl Fn(&mut Dec, &Node, &mut T),
    ) -> Result<T, String> {
        let mut out = T::default();
        let mut p = Parser::new(body);
        loop {
            p.skip_ws();
            if p.pos >= body.len() {
                return Ok(out);
            }
            let node = p.value().map_err(|e| match e {
                SynErr::Eof => "unexpected EOF".to_string(),
                SynErr::At(m, off) => format!("{m} at offset {off}"),
            })?;
            let mut d = Dec {
                body,
                root,
                path: Vec::new(),
                allow_unknown: false,
                err: None,
            };
            decode(&mut d, &node, &mut out);
            if let Some(e) = d.err {
                return Err(e);
            }
        }
    }

    /// `json.Unmarshal` of the whole body: one value, unknown fields ignored.
    fn decode_whole<T: Default>(
        body: &[u8],
        root: &'static str,
        decode: &impl Fn(&mut Dec, &Node, &mut T),
    ) -> Result<T, String> {
        let mut p = Parser::new(body);
        let node = p.value().map_err(|e| match e {
            SynErr::Eof => "unexpected end of JSON input".to_string(),
            SynErr::At(m, _) => m,
        })?;
        p.skip_ws();
        if p.pos < body.len() {
            let (q, _) = quote_char(body, p.pos);
            return Err(format!("invalid character {q} after top-level value"));
        }
        let mut out = T::default();
        let mut d = Dec {
            body,
            root,
            path: Vec::new(),
            allow_unknown: true,
            err: None,
        };
        decode(&mut d, &node, &mut out);
        d.err.map_or(Ok(out), Err)
    }

    /// Whether a request body is an object or array (nats-server's `isJSONObjectOrArray`);
    /// other bodies of optional-request APIs are ignored, not refused.
    pub fn is_object_or_array(b: &[u8]) -> bool {
        let first = b
            .iter()
            .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
        matches!(first, Some(b'{' | b'['))
    }

    /// nats-server's `isEmptyRequest`: nothing, or a JSON object without members.
    pub fn is_empty_request(b: &[u8]) -> bool {
        if b.is_empty() || b == b"{}" {
            return true;
        }
        let mut p = Parser::new(b);
        let Ok(node) = p.value() else { return false };
        p.skip_ws();
        p.pos >= b.len() && matches!(&node.kind, Kind::Object(m) if m.is_empty())
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// `ApiPaged`: always written, zeros included (an INFO without a subjects filter says
/// `"total":0,"offset":0,"limit":0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiPaged {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

impl ApiPaged {
    /// The page nats-server serves for a requested offset: negative counts as 0, past the
    /// end as the end; returns the page and the index range of items to include.
    pub fn page(total: usize, offset: i64, limit: usize) -> (ApiPaged, std::ops::Range<usize>) {
        let offset = usize::try_from(offset.max(0))
            .unwrap_or(usize::MAX)
            .min(total);
        let end = offset.saturating_add(limit).min(total);
        (
            ApiPaged {
                total,
                offset,
                limit,
            },
            offset..end,
        )
    }
}

/// An error as Go marshals `ApiError` (`err_code` and `description` are omitempty).
#[derive(Serialize)]
struct GoApiError<'a> {
    code: u16,
    #[serde(skip_serializing_if = "is_zero_u16")]
    err_code: u16,
    #[serde(skip_serializing_if = "is_empty_str")]
    description: &'a str,
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_empty_str(s: &&str) -> bool {
    s.is_empty()
}

fn is_empty_slice<T>(s: &&[T]) -> bool {
    s.is_empty()
}

fn is_empty_map(m: &&BTreeMap<String, String>) -> bool {
    m.is_empty()
}

impl<'a> From<&'a ApiError> for GoApiError<'a> {
    fn from(e: &'a ApiError) -> Self {
        GoApiError {
            code: e.code,
            err_code: e.err_code,
            description: &e.description,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LostStreamData {
    pub msgs: Vec<u64>,
    pub bytes: u64,
}

/// nats-server's `StreamState` JSON. Times are Unix nanoseconds, 0 meaning none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    #[serde(with = "go_time")]
    pub first_ts: i64,
    pub last_seq: u64,
    #[serde(with = "go_time")]
    pub last_ts: i64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub num_subjects: u64,
    /// Only with a `subjects_filter`; Go writes map keys sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub num_deleted: u64,
    /// Only with `deleted_details`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostStreamData>,
    pub consumer_count: usize,
}

impl StreamState {
    pub fn from_store(s: &tachyon_storage::StreamState, consumers: usize) -> StreamState {
        StreamState {
            messages: s.msgs,
            bytes: s.bytes,
            first_seq: s.first_seq,
            first_ts: s.first_ts,
            last_seq: s.last_seq,
            last_ts: s.last_ts,
            num_subjects: s.num_subjects,
            num_deleted: s.num_deleted,
            consumer_count: consumers,
            ..StreamState::default()
        }
    }
}

/// `PeerInfo` of a replica (clustered streams only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerInfo {
    pub name: String,
    pub current: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
    /// Nanoseconds since it was last active.
    pub active: i64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub lag: u64,
    pub peer: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pending: bool,
}

/// `ClusterInfo`. A server without a cluster reports only `leader` (its own name, which is
/// its server id unless `server_name` is set).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raft_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leader: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<GoTime>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub system_account: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub traffic_account: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
}

impl ClusterInfo {
    /// What a server outside any cluster puts in STREAM.INFO.
    pub fn single(server_name: &str) -> ClusterInfo {
        ClusterInfo {
            leader: server_name.to_string(),
            ..ClusterInfo::default()
        }
    }
}

/// `StreamSourceInfo`: how a mirror or source is doing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamSourceInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<crate::config::ExternalStream>,
    pub lag: u64,
    /// Nanoseconds since last contact; -1 when never active.
    pub active: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiErrorJson>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<crate::config::SubjectTransformConfig>,
}

/// An `ApiError` nested inside another value (Go's omitempty rules).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiErrorJson {
    pub code: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub err_code: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl From<&ApiError> for ApiErrorJson {
    fn from(e: &ApiError) -> Self {
        ApiErrorJson {
            code: e.code,
            err_code: e.err_code,
            description: e.description.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamAlternate {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub cluster: String,
}

/// nats-server's `StreamInfo`. Which optional parts appear depends on the API: create sets
/// neither `domain` nor `cluster`; update sets `domain`; info sets both; list sets `domain`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamInfo {
    pub config: StreamConfig,
    #[serde(with = "go_time")]
    pub created: i64,
    pub state: StreamState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSourceInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSourceInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<StreamAlternate>,
    /// When the reply was made.
    #[serde(with = "go_time")]
    pub ts: i64,
}

impl StreamInfo {
    pub fn new(config: StreamConfig, created: i64, state: StreamState, ts: i64) -> StreamInfo {
        StreamInfo {
            config,
            created,
            state,
            domain: String::new(),
            cluster: None,
            mirror: None,
            sources: Vec::new(),
            alternates: Vec::new(),
            ts,
        }
    }
}

#[derive(Serialize)]
struct WithError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: GoApiError<'a>,
}

#[derive(Serialize)]
struct CreateResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    info: &'a StreamInfo,
    #[serde(skip_serializing_if = "is_false")]
    did_create: bool,
}

#[derive(Serialize)]
struct InfoResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    page: ApiPaged,
    #[serde(flatten)]
    info: &'a StreamInfo,
}

#[derive(Serialize)]
struct NamesResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<GoApiError<'a>>,
    #[serde(flatten)]
    page: ApiPaged,
    /// Go's nil slice: `null` when there are none.
    streams: Option<&'a [String]>,
}

#[derive(Serialize)]
struct ListResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<GoApiError<'a>>,
    #[serde(flatten)]
    page: ApiPaged,
    streams: &'a [StreamInfo],
    #[serde(skip_serializing_if = "is_empty_slice")]
    missing: &'a [String],
    #[serde(skip_serializing_if = "is_empty_map")]
    offline: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SuccessResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    success: bool,
}

#[derive(Serialize)]
struct PurgeResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<GoApiError<'a>>,
    #[serde(skip_serializing_if = "is_false")]
    success: bool,
    purged: u64,
}

#[derive(Serialize)]
struct MsgGetResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a StoredMsg,
}

#[derive(Serialize)]
struct AccountInfoResponse<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    info: &'a AccountInfo,
}

/// `STREAM.CREATE` success. `info.config` should carry the dynamic metadata
/// ([`StreamConfig::with_dynamic_metadata`]). nats-server sets `did_create` also when an
/// identical stream already existed.
pub fn stream_create_response(info: &StreamInfo, did_create: bool) -> Vec<u8> {
    gojson::to_vec(&CreateResponse {
        kind: TYPE_STREAM_CREATE,
        info,
        did_create,
    })
}

/// `STREAM.UPDATE` success.
pub fn stream_update_response(info: &StreamInfo) -> Vec<u8> {
    gojson::to_vec(&CreateResponse {
        kind: TYPE_STREAM_UPDATE,
        info,
        did_create: false,
    })
}

/// `STREAM.INFO` success; `page` is all zeros unless a subjects filter matched subjects
/// (then total = matching subjects, limit = [`MAX_SUBJECT_DETAILS`]).
pub fn stream_info_response(info: &StreamInfo, page: ApiPaged) -> Vec<u8> {
    gojson::to_vec(&InfoResponse {
        kind: TYPE_STREAM_INFO,
        page,
        info,
    })
}

/// `STREAM.NAMES` success; no names is `"streams":null` as in nats-server.
pub fn stream_names_response(names: &[String], page: ApiPaged) -> Vec<u8> {
    gojson::to_vec(&NamesResponse {
        kind: TYPE_STREAM_NAMES,
        error: None,
        page,
        streams: (!names.is_empty()).then_some(names),
    })
}

/// `STREAM.LIST` success; configs in a list carry only the stored metadata (nats-server
/// adds no `_nats.ver`/`_nats.level` there).
pub fn stream_list_response(streams: &[StreamInfo], page: ApiPaged, missing: &[String]) -> Vec<u8> {
    gojson::to_vec(&ListResponse {
        kind: TYPE_STREAM_LIST,
        error: None,
        page,
        streams,
        missing,
        offline: &BTreeMap::new(),
    })
}

pub fn stream_delete_response() -> Vec<u8> {
    gojson::to_vec(&SuccessResponse {
        kind: TYPE_STREAM_DELETE,
        success: true,
    })
}

pub fn stream_purge_response(purged: u64) -> Vec<u8> {
    gojson::to_vec(&PurgeResponse {
        kind: TYPE_STREAM_PURGE,
        error: None,
        success: true,
        purged,
    })
}

pub fn msg_delete_response() -> Vec<u8> {
    gojson::to_vec(&SuccessResponse {
        kind: TYPE_MSG_DELETE,
        success: true,
    })
}

pub fn msg_get_response(message: &StoredMsg) -> Vec<u8> {
    gojson::to_vec(&MsgGetResponse {
        kind: TYPE_MSG_GET,
        message,
    })
}

pub fn account_info_response(info: &AccountInfo) -> Vec<u8> {
    gojson::to_vec(&AccountInfoResponse {
        kind: TYPE_ACCOUNT_INFO,
        info,
    })
}

/// Which API a reply answers; an error reply also carries the fields Go never omits from
/// that response type (`purged`, paging, `streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    AccountInfo,
    StreamCreate,
    StreamUpdate,
    StreamInfo,
    StreamNames,
    StreamList,
    StreamDelete,
    StreamPurge,
    MsgGet,
    MsgDelete,
}

impl ApiKind {
    pub fn type_name(self) -> &'static str {
        match self {
            ApiKind::AccountInfo => TYPE_ACCOUNT_INFO,
            ApiKind::StreamCreate => TYPE_STREAM_CREATE,
            ApiKind::StreamUpdate => TYPE_STREAM_UPDATE,
            ApiKind::StreamInfo => TYPE_STREAM_INFO,
            ApiKind::StreamNames => TYPE_STREAM_NAMES,
            ApiKind::StreamList => TYPE_STREAM_LIST,
            ApiKind::StreamDelete => TYPE_STREAM_DELETE,
            ApiKind::StreamPurge => TYPE_STREAM_PURGE,
            ApiKind::MsgGet => TYPE_MSG_GET,
            ApiKind::MsgDelete => TYPE_MSG_DELETE,
        }
    }
}

/// An error reply: `{"type":..,"error":{..}}` plus what that response type always carries,
/// e.g. `"purged":0` for purge, `"total":0,"offset":0,"limit":0` for info, and
/// `"streams":null` / `"streams":[]` for names / list.
pub fn error_response(kind: ApiKind, err: &ApiError) -> Vec<u8> {
    let kind_name = kind.type_name();
    let error = GoApiError::from(err);
    match kind {
        ApiKind::StreamInfo => {
            #[derive(Serialize)]
            struct E<'a> {
                #[serde(rename = "type")]
                kind: &'a str,
                error: GoApiError<'a>,
                #[serde(flatten)]
                page: ApiPaged,
            }
            gojson::to_vec(&E {
                kind: kind_name,
                error,
                page: ApiPaged::default(),
            })
        }
        ApiKind::StreamNames => gojson::to_vec(&NamesResponse {
            kind: kind_name,
            error: Some(error),
            page: ApiPaged::default(),
            streams: None,
        }),
        ApiKind::StreamList => gojson::to_vec(&ListResponse {
            kind: kind_name,
            error: Some(error),
            page: ApiPaged::default(),
            streams: &[],
            missing: &[],
            offline: &BTreeMap::new(),
        }),
        ApiKind::StreamPurge => gojson::to_vec(&PurgeResponse {
            kind: kind_name,
            error: Some(error),
            success: false,
            purged: 0,
        }),
        _ => error_response_for_type(kind_name, err),
    }
}

/// An error reply for a response type with no always-present fields (consumer APIs and the
/// like): `{"type":"...","error":{...}}`.
pub fn error_response_for_type(type_name: &str, err: &ApiError) -> Vec<u8> {
    gojson::to_vec(&WithError {
        kind: type_name,
        error: GoApiError::from(err),
    })
}

/// A message as `STREAM.MSG.GET` returns it; `hdrs` and `data` are base64 and left out
/// when empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredMsg {
    pub subject: String,
    pub seq: u64,
    #[serde(default, with = "go_bytes", skip_serializing_if = "Vec::is_empty")]
    pub hdrs: Vec<u8>,
    #[serde(default, with = "go_bytes", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
    #[serde(with = "go_time")]
    pub time: i64,
}

impl StoredMsg {
    /// `with_headers` false for a request with `no_hdr`.
    pub fn from_store(m: &tachyon_storage::StoredMsg, with_headers: bool) -> StoredMsg {
        StoredMsg {
            subject: m.subject.clone(),
            seq: m.seq,
            hdrs: if with_headers {
                m.headers.clone()
            } else {
                Vec::new()
            },
            data: m.payload.clone(),
            time: m.timestamp,
        }
    }
}

/// `JetStreamAccountLimits`; -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    pub max_memory: i64,
    pub max_storage: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub storage_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_memory: -1,
            max_storage: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// `JetStreamAPIStats`; `level` is the API level the server claims (Tachyon: 2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiStats {
    pub level: u32,
    pub total: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inflight: u64,
}

/// `JetStreamTier`, as listed under `tiers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountTier {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub streams: usize,
    pub consumers: usize,
    pub limits: AccountLimits,
}

/// `JetStreamAccountStats` as `$JS.API.INFO` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountInfo {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub streams: usize,
    pub consumers: usize,
    pub limits: AccountLimits,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub api: ApiStats,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, AccountTier>,
}

// ---------------------------------------------------------------------------------------------
// Publish acks
// ---------------------------------------------------------------------------------------------

/// The ack nats-server writes by hand (Go `%q` quoting, not JSON escaping):
/// `{"stream":"S","seq":7}`, with a domain `{"stream":"S","domain":"D","seq":7}`, and for a
/// duplicate `...,"seq":7,"duplicate": true}` (with that space).
pub fn pub_ack(stream: &str, seq: u64, duplicate: bool, domain: Option<&str>) -> Vec<u8> {
    let mut v = pub_ack_prefix(stream, domain);
    finish_pub_ack(&mut v, seq, duplicate);
    v
}

/// What every ack of a stream starts with: `{"stream":"S"[,"domain":"D"],"seq":`.
pub fn pub_ack_prefix(stream: &str, domain: Option<&str>) -> Vec<u8> {
    let mut s = format!("{{\"stream\":{}", gojson::quote(stream.as_bytes()));
    if let Some(d) = domain.filter(|d| !d.is_empty()) {
        s.push_str(&format!(",\"domain\":{}", gojson::quote(d.as_bytes())));
    }
    s.push_str(",\"seq\":");
    s.into_bytes()
}

/// Ends an ack after its [`pub_ack_prefix`]: the sequence, the duplicate flag, `}`.
pub fn finish_pub_ack(out: &mut Vec<u8>, seq: u64, duplicate: bool) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{seq}");
    if duplicate {
        out.extend_from_slice(b",\"duplicate\": true");
    }
    out.push(b'}');
}

/// A refused publish: `{"error":{..},"stream":"S","seq":0}` (marshalled, never with the
/// domain).
pub fn pub_ack_error(stream: &str, err: &ApiError) -> Vec<u8> {
    #[derive(Serialize)]
    struct E<'a> {
        error: GoApiError<'a>,
        stream: &'a str,
        seq: u64,
    }
    gojson::to_vec(&E {
        error: GoApiError::from(err),
        stream,
        seq: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn invalid_json(e: String) -> ApiError {
    errors::INVALID_JSON.with("err", e)
}

/// `JSApiStreamInfoRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamInfoRequest {
    /// Already clamped at 0.
    pub offset: usize,
    pub deleted_details: bool,
    pub subjects_filter: String,
}

/// `STREAM.INFO` body: read only when it looks like an object or array, anything else is
/// ignored.
pub fn parse_stream_info_request(body: &[u8], strict: bool) -> Result<StreamInfoRequest, ApiError> {
    if !gojson::is_object_or_array(body) {
        return Ok(StreamInfoRequest::default());
    }
    let (offset, deleted_details, subjects_filter) = gojson::decode_request(
        body,
        strict,
        "JSApiStreamInfoRequest",
        |d, n, out: &mut (i64, bool, String)| {
            d.object(
                n,
                "server.JSApiStreamInfoRequest",
                &["offset", "deleted_details", "subjects_filter"],
                |d, f, v| match f {
                    "offset" => d.int(v, &mut out.0, "int"),
                    "deleted_details" => d.boolean(v, &mut out.1),
                    _ => d.string(v, &mut out.2),
                },
            );
        },
    )
    .map_err(invalid_json)?;
    Ok(StreamInfoRequest {
        offset: usize::try_from(offset.max(0)).unwrap_or(usize::MAX),
        deleted_details,
        subjects_filter,
    })
}

/// `JSApiStreamNamesRequest` / `JSApiStreamListRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamNamesRequest {
    /// Already clamped at 0.
    pub offset: usize,
    /// Only streams whose subjects overlap this one.
    pub subject: String,
}

fn parse_paged_subject(
    body: &[u8],
    strict: bool,
    root: &'static str,
    go: &'static str,
) -> Result<StreamNamesRequest, ApiError> {
    if !gojson::is_object_or_array(body) {
        return Ok(StreamNamesRequest::default());
    }
    let (offset, subject) =
        gojson::decode_request(body, strict, root, |d, n, out: &mut (i64, String)| {
            d.object(n, go, &["offset", "subject"], |d, f, v| match f {
                "offset" => d.int(v, &mut out.0, "int"),
                _ => d.string(v, &mut out.1),
            });
        })
        .map_err(invalid_json)?;
    Ok(StreamNamesRequest {
        offset: usize::try_from(offset.max(0)).unwrap_or(usize::MAX),
        subject,
    })
}

pub fn parse_stream_names_request(
    body: &[u8],
    strict: bool,
) -> Result<StreamNamesRequest, ApiError> {
    parse_paged_subject(
        body,
        strict,
        "JSApiStreamNamesRequest",
        "server.JSApiStreamNamesRequest",
    )
}

pub fn parse_stream_list_request(
    body: &[u8],
    strict: bool,
) -> Result<StreamNamesRequest, ApiError> {
    parse_paged_subject(
        body,
        strict,
        "JSApiStreamListRequest",
        "server.JSApiStreamListRequest",
    )
}

/// `JSApiStreamPurgeRequest`; 0 / empty mean "not set".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PurgeRequest {
    /// Purge below this sequence.
    pub seq: u64,
    pub filter: String,
    pub keep: u64,
}

impl PurgeRequest {
    pub fn to_storage(&self) -> tachyon_storage::PurgeRequest {
        tachyon_storage::PurgeRequest {
            filter: (!self.filter.is_empty()).then(|| self.filter.clone()),
            up_to_seq: (self.seq > 0).then_some(self.seq),
            keep: (self.keep > 0).then_some(self.keep),
        }
    }
}

/// `STREAM.PURGE` body: `None` for a body that is no object or array (purge everything);
/// `seq` with `keep` is a bad request.
pub fn parse_purge_request(body: &[u8], strict: bool) -> Result<Option<PurgeRequest>, ApiError> {
    if !gojson::is_object_or_array(body) {
        return Ok(None);
    }
    let req = gojson::decode_request(
        body,
        strict,
        "JSApiStreamPurgeRequest",
        |d, n, out: &mut PurgeRequest| {
            d.object(
                n,
                "server.JSApiStreamPurgeRequest",
                &["seq", "filter", "keep"],
                |d, f, v| match f {
                    "seq" => d.uint(v, &mut out.seq),
                    "filter" => d.string(v, &mut out.filter),
                    _ => d.uint(v, &mut out.keep),
                },
            );
        },
    )
    .map_err(invalid_json)?;
    if req.seq > 0 && req.keep > 0 {
        return Err(errors::BAD_REQUEST.err());
    }
    Ok(Some(req))
}

/// `JSApiMsgGetRequest` (also the JSON body of `DIRECT.GET`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MsgGetRequest {
    pub seq: u64,
    pub last_by_subj: String,
    pub next_by_subj: String,
    pub batch: i64,
    pub max_bytes: i64,
    pub start_time: Option<GoTime>,
    pub multi_last: Vec<String>,
    pub up_to_seq: u64,
    pub up_to_time: Option<GoTime>,
    pub no_hdr: bool,
}

const MSG_GET_FIELDS: &[&str] = &[
    "seq",
    "last_by_subj",
    "next_by_subj",
    "batch",
    "max_bytes",
    "start_time",
    "multi_last",
    "up_to_seq",
    "up_to_time",
    "no_hdr",
];

/// Decodes a `JSApiMsgGetRequest` without `STREAM.MSG.GET`'s extra checks (for
/// `DIRECT.GET`, whose rules differ).
pub fn decode_msg_get_request(body: &[u8], strict: bool) -> Result<MsgGetRequest, ApiError> {
    gojson::decode_request(
        body,
        strict,
        "JSApiMsgGetRequest",
        |d, n, out: &mut MsgGetRequest| {
            d.object(
                n,
                "server.JSApiMsgGetRequest",
                MSG_GET_FIELDS,
                |d, f, v| match f {
                    "seq" => d.uint(v, &mut out.seq),
                    "last_by_subj" => d.string(v, &mut out.last_by_subj),
                    "next_by_subj" => d.string(v, &mut out.next_by_subj),
                    "batch" => d.int(v, &mut out.batch, "int"),
                    "max_bytes" => d.int(v, &mut out.max_bytes, "int"),
                    "start_time" => d.time(v, &mut out.start_time),
                    "multi_last" => d.strings(v, &mut out.multi_last),
                    "up_to_seq" => d.uint(v, &mut out.up_to_seq),
                    "up_to_time" => d.time(v, &mut out.up_to_time),
                    _ => d.boolean(v, &mut out.no_hdr),
                },
            );
        },
    )
    .map_err(invalid_json)
}

/// `STREAM.MSG.GET` body with nats-server's checks: empty → bad request; `batch` or
/// `max_bytes` (direct get only) → bad request; exactly one way to pick the message.
pub fn parse_msg_get_request(body: &[u8], strict: bool) -> Result<MsgGetRequest, ApiError> {
    if gojson::is_empty_request(body) {
        return Err(errors::BAD_REQUEST.err());
    }
    let r = decode_msg_get_request(body, strict)?;
    if r.batch > 0 || r.max_bytes > 0 {
        return Err(errors::BAD_REQUEST.err());
    }
    let last = !r.last_by_subj.is_empty();
    let next = !r.next_by_subj.is_empty();
    let start = r.start_time.is_some();
    if (r.seq > 0 && last)
        || (r.seq == 0 && !last && !next && !start)
        || (r.seq > 0 && start)
        || (start && last)
        || (last && next)
    {
        return Err(errors::BAD_REQUEST.err());
    }
    Ok(r)
}

/// `JSApiMsgDeleteRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MsgDeleteRequest {
    pub seq: u64,
    /// Remove without overwriting the bytes.
    pub no_erase: bool,
}

/// `STREAM.MSG.DELETE` body; empty → bad request. A sequence that holds no message is
/// answered with `errors::SEQUENCE_NOT_FOUND.with("seq", seq)` (10043).
pub fn parse_msg_delete_request(body: &[u8], strict: bool) -> Result<MsgDeleteRequest, ApiError> {
    if gojson::is_empty_request(body) {
        return Err(errors::BAD_REQUEST.err());
    }
    gojson::decode_request(
        body,
        strict,
        "JSApiMsgDeleteRequest",
        |d, n, out: &mut MsgDeleteRequest| {
            d.object(
                n,
                "server.JSApiMsgDeleteRequest",
                &["seq", "no_erase"],
                |d, f, v| match f {
                    "seq" => d.uint(v, &mut out.seq),
                    _ => d.boolean(v, &mut out.no_erase),
                },
            );
        },
    )
    .map_err(invalid_json)
}

/// nats-server's `errorOnRequiredApiLevel`: a request whose `Nats-Required-Api-Level`
/// header is not a number, or above `api_level`, is refused with
/// `errors::REQUIRED_API_LEVEL`.
pub fn requires_higher_api_level(header_value: Option<&str>, api_level: u32) -> bool {
    match header_value {
        None | Some("") => false,
        Some(v) => v.parse::<i64>().map_or(true, |l| i64::from(api_level) < l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies captured from nats-server 2.15.1 (`-js`, one server, no cluster).
    const CREATE_S: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"S","subjects":["S"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-12-04T15:52:08.696059268Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T15:52:08.69725415Z","did_create":true}"#;

    const INFO_P_DETAILS: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":1,"offset":0,"limit":100000,"config":{"name":"P","subjects":["p.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"memory","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-12-04T15:54:51.27983578Z","state":{"messages":1,"bytes":52,"first_seq":1,"first_ts":"2026-12-04T15:54:51.280580895Z","last_seq":3,"last_ts":"2026-12-04T15:54:51.282466011Z","num_subjects":1,"subjects":{"p.a":1},"num_deleted":2,"deleted":[2,3],"consumer_count":0},"cluster":{"leader":"NBR7JCKGH4GTW4R3JQUXBMTTSGUBCVGCAW6HEMGSBWT6UEU7BRZEFIVG"},"ts":"2026-12-04T15:54:51.288938691Z"}"#;

    const INFO_DOMAIN: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,"config":{"name":"X","subjects":["X"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-12-04T15:55:00.926054208Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"domain":"hub","cluster":{"leader":"ND7QMFLZOWDF2F3SQUUPLI4MAB7TMMLVNPNMWXPPCIZ3MCUVQHBJ2AXZ"},"ts":"2026-12-04T15:55:00.931806195Z"}"#;

    const CREATE_SOURCES: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"F2","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"memory","num_replicas":1,"sources":[{"name":"F1","opt_start_seq":3,"filter_subject":"f1.x","external":{"api":"$JS.ext.API","deliver":"dlv"}},{"name":"S","opt_start_time":"2024-01-02T03:04:05.5+01:00","subject_transforms":[{"src":"S","dest":"T"}]},{"name":"S2","consumer":{"name":"c1","deliver_subject":"ds"}}],"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"allow_msg_counter":true,"allow_atomic":true,"metadata":{"_nats.level":"5","_nats.req.level":"2","_nats.ver":"2.15.1"}},"created":"2026-12-04T15:54:35.691508889Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"sources":[{"name":"F1","external":{"api":"$JS.ext.API","deliver":"dlv"},"lag":0,"active":-1,"filter_subject":"f1.x"},{"name":"S","lag":0,"active":-1,"subject_transforms":[{"src":"S","dest":"T"}]},{"name":"S2","lag":0,"active":-1}],"ts":"2026-12-04T15:54:35.691567957Z","did_create":true}"#;

    const CREATE_MIRROR: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"F4","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"mirror":{"name":"S"},"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":true,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-12-04T15:54:29.611149566Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"mirror":{"name":"S","lag":0,"active":-1},"ts":"2026-12-04T15:54:29.612041099Z","did_create":true}"#;

    const UPDATE_SEALED: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_update_response","config":{"name":"P","subjects":["p.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"new","storage":"memory","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":true,"deny_delete":true,"deny_purge":true,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-12-04T15:54:51.27983578Z","state":{"messages":0,"bytes":0,"first_seq":4,"first_ts":"0001-01-01T00:00:00Z","last_seq":3,"last_ts":"2026-12-04T15:54:51.282466011Z","consumer_count":0},"ts":"2026-12-04T15:54:51.297674838Z"}"#;

    const LIST_S: &str = r#"{"type":"io.nats.jetstream.api.v1.stream_list_response","total":1,"offset":0,"limit":256,"streams":[{"config":{"name":"S","subjects":["S"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.req.level":"0"}},"created":"2026-12-04T15:52:08.696059268Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T15:52:08.700747812Z"}]}"#;

    fn s(b: Vec<u8>) -> String {
        String::from_utf8(b).expect("utf-8")
    }

    /// The `streams` element of a list reply, or the whole body of an info-like reply.
    fn info_of(reply: &str) -> StreamInfo {
        serde_json::from_str(reply).expect("parses as StreamInfo")
    }

    #[test]
    fn create_reply_is_byte_identical() {
        assert_eq!(
            s(stream_create_response(&info_of(CREATE_S), true)),
            CREATE_S
        );
        assert_eq!(
            s(stream_create_response(&info_of(CREATE_SOURCES), true)),
            CREATE_SOURCES
        );
        assert_eq!(
            s(stream_create_response(&info_of(CREATE_MIRROR), true)),
            CREATE_MIRROR
        );
    }

    #[test]
    fn create_reply_built_from_scratch() {
        let cfg = crate::config::parse_create(br#"{"name":"S"}"#, "S", true).expect("valid");
        let created = parse_rfc3339_nano("2026-12-04T15:52:08.696059268Z").expect("time");
        let ts = parse_rfc3339_nano("2026-12-04T15:52:08.69725415Z").expect("time");
        let store = tachyon_storage::StreamState::default();
        let info = StreamInfo::new(
            cfg.with_dynamic_metadata("2.15.1", 5),
            created,
            StreamState::from_store(&store, 0),
            ts,
        );
        assert_eq!(s(stream_create_response(&info, true)), CREATE_S);
        // Tachyon's own version and level go where the reference prints its own.
        let tachyon = StreamInfo {
            config: info.config.with_dynamic_metadata("2.12.0", 2),
            ..info
        };
        assert!(s(stream_create_response(&tachyon, true)).contains(
            r#""metadata":{"_nats.level":"2","_nats.req.level":"0","_nats.ver":"2.12.0"}"#
        ));
    }

    #[test]
    fn info_and_update_replies_are_byte_identical() {
        let page = ApiPaged {
            total: 1,
            offset: 0,
            limit: MAX_SUBJECT_DETAILS,
        };
        assert_eq!(
            s(stream_info_response(&info_of(INFO_P_DETAILS), page)),
            INFO_P_DETAILS
        );
        assert_eq!(
            s(stream_info_response(
                &info_of(INFO_DOMAIN),
                ApiPaged::default()
            )),
            INFO_DOMAIN
        );
        assert_eq!(
            s(stream_update_response(&info_of(UPDATE_SEALED))),
            UPDATE_SEALED
        );
        let info = info_of(INFO_DOMAIN);
        assert_eq!(
            info.cluster,
            Some(ClusterInfo::single(
                "ND7QMFLZOWDF2F3SQUUPLI4MAB7TMMLVNPNMWXPPCIZ3MCUVQHBJ2AXZ"
            ))
        );
    }

    #[test]
    fn list_and_names_replies_are_byte_identical() {
        let v: serde_json::Value = serde_json::from_str(LIST_S).expect("json");
        let one: StreamInfo = serde_json::from_value(v["streams"][0].clone()).expect("info");
        let page = ApiPaged {
            total: 1,
            offset: 0,
            limit: LIST_LIMIT,
        };
        assert_eq!(s(stream_list_response(&[one], page, &[])), LIST_S);
        let empty = ApiPaged {
            total: 0,
            offset: 0,
            limit: LIST_LIMIT,
        };
        assert_eq!(
            s(stream_list_response(&[], empty, &[])),
            r#"{"type":"io.nats.jetstream.api.v1.stream_list_response","total":0,"offset":0,"limit":256,"streams":[]}"#
        );
        let (page, range) = ApiPaged::page(6, 1, NAMES_LIMIT);
        assert_eq!(range, 1..6);
        let names: Vec<String> = ["F2", "F4", "P", "S", "X"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            s(stream_names_response(&names, page)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":6,"offset":1,"limit":1024,"streams":["F2","F4","P","S","X"]}"#
        );
        let (page, range) = ApiPaged::page(0, 0, NAMES_LIMIT);
        assert!(range.is_empty());
        assert_eq!(
            s(stream_names_response(&[], page)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":null}"#
        );
        assert_eq!(ApiPaged::page(3, 10, 2).1, 3..3);
        assert_eq!(ApiPaged::page(3, -4, 2).1, 0..2);
    }

    #[test]
    fn error_replies_are_byte_identical() {
        let not_found = errors::STREAM_NOT_FOUND.err();
        assert_eq!(
            s(error_response(ApiKind::StreamInfo, &not_found)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}"#
        );
        assert_eq!(
            s(error_response(ApiKind::StreamDelete, &not_found)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_delete_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
        );
        assert_eq!(
            s(error_response(
                ApiKind::StreamPurge,
                &errors::BAD_REQUEST.err()
            )),
            r#"{"type":"io.nats.jetstream.api.v1.stream_purge_response","error":{"code":400,"err_code":10003,"description":"bad request"},"purged":0}"#
        );
        assert_eq!(
            s(error_response(
                ApiKind::StreamCreate,
                &errors::STREAM_REPLICAS_NOT_SUPPORTED.err()
            )),
            r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":500,"err_code":10074,"description":"replicas \u003e 1 not supported in non-clustered mode"}}"#
        );
        let names_err =
            parse_stream_names_request(br#"{"offset":"a"}"#, true).expect_err("bad offset");
        assert_eq!(
            s(error_response(ApiKind::StreamNames, &names_err)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: cannot unmarshal string into Go struct field JSApiStreamNamesRequest.offset of type int"},"total":0,"offset":0,"limit":0,"streams":null}"#
        );
        let list_err =
            parse_stream_list_request(br#"{"offset":"a"}"#, true).expect_err("bad offset");
        assert_eq!(
            s(error_response(ApiKind::StreamList, &list_err)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_list_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: cannot unmarshal string into Go struct field JSApiStreamListRequest.offset of type int"},"total":0,"offset":0,"limit":0,"streams":[]}"#
        );
        assert_eq!(
            s(error_response(
                ApiKind::MsgDelete,
                &errors::SEQUENCE_NOT_FOUND.with("seq", 2)
            )),
            r#"{"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","error":{"code":400,"err_code":10043,"description":"sequence 2 not found"}}"#
        );
        assert_eq!(
            s(error_response(
                ApiKind::MsgGet,
                &errors::NO_MESSAGE_FOUND.err()
            )),
            r#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":404,"err_code":10037,"description":"no message found"}}"#
        );
    }

    #[test]
    fn success_replies_are_byte_identical() {
        assert_eq!(
            s(stream_delete_response()),
            r#"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"#
        );
        assert_eq!(
            s(msg_delete_response()),
            r#"{"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","success":true}"#
        );
        assert_eq!(
            s(stream_purge_response(1)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":1}"#
        );
        assert_eq!(
            s(stream_purge_response(0)),
            r#"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":0}"#
        );
    }

    #[test]
    fn msg_get_replies_are_byte_identical() {
        let m = tachyon_storage::StoredMsg {
            seq: 1,
            timestamp: parse_rfc3339_nano("2026-12-04T15:54:51.280580895Z").expect("time"),
            subject: "p.a".into(),
            headers: b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n".to_vec(),
            payload: b"hello".to_vec(),
        };
        assert_eq!(
            s(msg_get_response(&StoredMsg::from_store(&m, true))),
            r#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"p.a","seq":1,"hdrs":"TkFUUy8xLjANCk5hdHMtTXNnLUlkOiAxDQoNCg==","data":"aGVsbG8=","time":"2026-12-04T15:54:51.280580895Z"}}"#
        );
        let empty = tachyon_storage::StoredMsg {
            seq: 2,
            timestamp: parse_rfc3339_nano("2026-12-04T15:54:51.281320722Z").expect("time"),
            subject: "p.b".into(),
            headers: Vec::new(),
            payload: Vec::new(),
        };
        assert_eq!(
            s(msg_get_response(&StoredMsg::from_store(&empty, true))),
            r#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"p.b","seq":2,"time":"2026-12-04T15:54:51.281320722Z"}}"#
        );
        let bin = StoredMsg {
            data: b"data\x00\xc3\xbf".to_vec(),
            ..StoredMsg::from_store(&m, false)
        };
        let out = s(msg_get_response(&bin));
        assert!(
            out.contains(r#""seq":1,"data":"ZGF0YQDDvw==","time""#),
            "{out}"
        );
        let back: StoredMsg = serde_json::from_str(r#"{"subject":"p.a","seq":1,"hdrs":"TkFUUy8xLjANCk5hdHMtTXNnLUlkOiAxDQoNCg==","data":"aGVsbG8=","time":"2026-12-04T15:54:51.280580895Z"}"#).expect("parses");
        assert_eq!(back, StoredMsg::from_store(&m, true));
    }

    #[test]
    fn account_info_replies_are_byte_identical() {
        let mut info = AccountInfo {
            streams: 1,
            api: ApiStats {
                level: 5,
                total: 5,
                errors: 0,
                inflight: 0,
            },
            ..AccountInfo::default()
        };
        assert_eq!(
            s(account_info_response(&info)),
            r#"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":0,"reserved_memory":0,"reserved_storage":0,"streams":1,"consumers":0,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"max_bytes_required":false},"api":{"level":5,"total":5,"errors":0}}"#
        );
        info.storage = 66;
        info.streams = 2;
        info.domain = "hub".into();
        info.api.total = 7;
        info.api.errors = 4;
        assert_eq!(
            s(account_info_response(&info)),
            r#"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":66,"reserved_memory":0,"reserved_storage":0,"streams":2,"consumers":0,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"max_bytes_required":false},"domain":"hub","api":{"level":5,"total":7,"errors":4}}"#
        );
    }

    #[test]
    fn pub_acks_are_byte_identical() {
        assert_eq!(s(pub_ack("P", 1, false, None)), r#"{"stream":"P","seq":1}"#);
        assert_eq!(
            s(pub_ack("P", 1, true, None)),
            r#"{"stream":"P","seq":1,"duplicate": true}"#
        );
        assert_eq!(
            s(pub_ack("X", 1, false, Some("hub"))),
            r#"{"stream":"X","domain":"hub","seq":1}"#
        );
        assert_eq!(
            s(pub_ack("X", 2, true, Some("hub"))),
            r#"{"stream":"X","domain":"hub","seq":2,"duplicate": true}"#
        );
        assert_eq!(
            s(pub_ack("P", 1, false, Some(""))),
            r#"{"stream":"P","seq":1}"#
        );
        // %q, not JSON: no \u003c for '<'.
        assert_eq!(
            s(pub_ack("a<b", 3, false, None)),
            r#"{"stream":"a<b","seq":3}"#
        );
        assert_eq!(
            s(pub_ack_error(
                "P",
                &errors::STREAM_WRONG_LAST_SEQUENCE.with("seq", 2)
            )),
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 2"},"stream":"P","seq":0}"#
        );
        assert_eq!(
            s(pub_ack_error("P", &errors::STREAM_SEALED.err())),
            r#"{"error":{"code":400,"err_code":10109,"description":"invalid operation on sealed stream"},"stream":"P","seq":0}"#
        );
    }

    #[test]
    fn times_format_like_go() {
        for t in [
            "2026-12-04T15:52:08.696059268Z",
            "2026-12-04T15:54:51.27983578Z",
            "2026-12-04T15:52:08.69725415Z",
            "2026-12-04T16:02:15.8983397Z",
            "1970-01-01T00:00:01Z",
            "2000-02-29T23:59:59.5Z",
        ] {
            let n = parse_rfc3339_nano(t).expect("parses");
            assert_eq!(rfc3339_nano(n), t);
        }
        assert_eq!(rfc3339_nano(0), ZERO_TIME);
        assert_eq!(parse_rfc3339_nano(ZERO_TIME), Some(0));
        assert_eq!(rfc3339_nano(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_nano(1_000_000_000), "1970-01-01T00:00:01Z");
        // Offsets are kept for echoing and honoured for the instant.
        let t = GoTime::parse("2024-01-02T03:04:05.5+01:00").expect("parses");
        assert_eq!(t.format(), "2024-01-02T03:04:05.5+01:00");
        assert_eq!(
            parse_rfc3339_nano("2024-01-02T03:04:05.5+01:00"),
            parse_rfc3339_nano("2024-01-02T02:04:05.5Z")
        );
        assert_eq!(
            GoTime::parse("2024-01-02T03:04:05-00:30")
                .expect("ok")
                .format(),
            "2024-01-02T03:04:05-00:30"
        );
        // Go's loose RFC 3339: one-digit hour, comma, more than nine digits.
        assert!(GoTime::parse("2024-01-01T0:00:00Z").is_ok());
        assert_eq!(
            GoTime::parse("2024-01-01T00:00:00,5Z").map(|t| t.nanos),
            Ok(500_000_000)
        );
        assert_eq!(
            GoTime::parse("2024-01-01T00:00:00.123456789123Z").map(|t| t.nanos),
            Ok(123_456_789)
        );
        assert_eq!(parse_rfc3339_nano("yesterday"), None);
    }

    #[test]
    fn go_escaping() {
        assert_eq!(
            s(gojson::to_vec(&"a<b>&c\u{2028}\u{2029}\n\t\x01\x7f\"\\é")),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\n\\t\\u0001\x7f\\\"\\\\é\""
        );
        assert_eq!(
            gojson::quote(b"a\"b\\c\x01\xff\xc3\xa9\n"),
            "\"a\\\"b\\\\c\\x01\\xffé\\n\""
        );
    }

    #[test]
    fn request_parsing() {
        // INFO ignores bodies that are not objects or arrays.
        assert_eq!(
            parse_stream_info_request(b"garbage", true),
            Ok(StreamInfoRequest::default())
        );
        let r = parse_stream_info_request(
            br#"{"subjects_filter":">","deleted_details":true,"offset":-3}"#,
            true,
        )
        .expect("valid");
        assert_eq!(
            (r.offset, r.deleted_details, r.subjects_filter.as_str()),
            (0, true, ">")
        );
        let e = parse_stream_info_request(b"{bad", true).expect_err("bad json");
        assert_eq!(
            e.description,
            "invalid JSON: invalid character 'b' looking for beginning of object key string at offset 2"
        );
        let r =
            parse_stream_names_request(br#"{"subject":"p.x","offset":1}"#, true).expect("valid");
        assert_eq!((r.offset, r.subject.as_str()), (1, "p.x"));

        assert_eq!(parse_purge_request(b"", true), Ok(None));
        assert_eq!(
            parse_purge_request(br#"{"seq":2,"keep":1}"#, true),
            Err(errors::BAD_REQUEST.err())
        );
        let e = parse_purge_request(br#"{"x":1}"#, true).expect_err("unknown field");
        assert_eq!(e.description, "invalid JSON: json: unknown field \"x\"");
        assert_eq!(
            parse_purge_request(br#"{"x":1}"#, false),
            Ok(Some(PurgeRequest::default()))
        );
        let p = parse_purge_request(br#"{"filter":"p.a","keep":2}"#, true)
            .expect("valid")
            .expect("present");
        assert_eq!(
            p.to_storage(),
            tachyon_storage::PurgeRequest {
                filter: Some("p.a".into()),
                up_to_seq: None,
                keep: Some(2),
            }
        );

        for bad in [
            &b""[..],
            b"{}",
            b" { } ",
            br#"{"seq":1,"last_by_subj":"p.d"}"#,
            br#"{"seq":1,"batch":2}"#,
        ] {
            assert_eq!(
                parse_msg_get_request(bad, true),
                Err(errors::BAD_REQUEST.err()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = parse_msg_get_request(b"5", true).expect_err("not an object");
        assert_eq!(
            e.description,
            "invalid JSON: json: cannot unmarshal number into Go value of type server.JSApiMsgGetRequest"
        );
        let r = parse_msg_get_request(br#"{"next_by_subj":"p.*","seq":2}"#, true).expect("valid");
        assert_eq!((r.seq, r.next_by_subj.as_str()), (2, "p.*"));
        let r = parse_msg_get_request(br#"{"last_by_subj":"p.d"}"#, true).expect("valid");
        assert_eq!(r.last_by_subj, "p.d");

        assert_eq!(
            parse_msg_delete_request(b"", true),
            Err(errors::BAD_REQUEST.err())
        );
        let r = parse_msg_delete_request(br#"{"seq":3,"no_erase":true}"#, true).expect("valid");
        assert_eq!(
            r,
            MsgDeleteRequest {
                seq: 3,
                no_erase: true
            }
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = |n: usize| {
            let mut b = vec![b'['; n];
            b.extend(vec![b']'; n]);
            b
        };
        let e = crate::config::parse_create(&deep(10_000), "X", true).expect_err("not a config");
        assert_eq!(
            e.description,
            "invalid JSON: json: cannot unmarshal array into Go value of type server.StreamConfigRequest"
        );
        let e = crate::config::parse_create(&deep(10_001), "X", true).expect_err("too deep");
        assert_eq!(
            e.description,
            "invalid JSON: exceeded max depth at offset 10001"
        );
        let mut obj = br#"{"a":"#.repeat(10_001);
        obj.push(b'1');
        obj.extend(vec![b'}'; 10_001]);
        let e = crate::config::parse_create(&obj, "X", true).expect_err("too deep");
        assert_eq!(
            e.description,
            "invalid JSON: exceeded max depth at offset 50001"
        );
        assert_eq!(rfc3339_nano(i64::MIN), "1677-09-21T00:12:43.145224192Z");
        assert_eq!(rfc3339_nano(i64::MAX), "2262-04-11T23:47:16.854775807Z");
    }

    #[test]
    fn required_api_level_header() {
        assert!(!requires_higher_api_level(None, 2));
        assert!(!requires_higher_api_level(Some("2"), 2));
        assert!(requires_higher_api_level(Some("3"), 2));
        assert!(requires_higher_api_level(Some("x"), 2));
    }
}
