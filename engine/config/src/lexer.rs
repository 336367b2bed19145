//! Character-level scanning of nats-server's config format: positions, whitespace and comments,
//! keys, quoted/bare/block strings and the classification of bare words into numbers, sizes,
//! booleans and variable references (nats-server's conf/lex.go decides the same way).
//!
//! The format is context sensitive (a bare word is a key in one place and a value in the next),
//! so the parser drives this cursor and asks for the token it expects rather than pulling a
//! token stream.

use std::path::PathBuf;
use std::sync::Arc;

use super::value::{ConfigError, Pos};

/// A scalar value as written, before variables are resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `$NAME`, without the dollar.
    Var(String),
}

pub struct Cursor<'a> {
    src: &'a str,
    at: usize,
    line: u32,
    col: u32,
    file: Option<Arc<PathBuf>>,
}

impl<'a> Cursor<'a> {
    pub fn new(src: &'a str, file: Option<Arc<PathBuf>>) -> Self {
        Cursor {
            src,
            at: 0,
            line: 1,
            col: 1,
            file,
        }
    }

    pub fn pos(&self) -> Pos {
        Pos {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
        }
    }

    pub fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::syntax(&self.pos(), msg)
    }

    pub fn peek(&self) -> Option<char> {
        self.src[self.at..].chars().next()
    }

    pub fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.at..].chars();
        it.next();
        it.next()
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    pub fn at_eof(&self) -> bool {
        self.at >= self.src.len()
    }

    fn at_comment(&self) -> bool {
        match self.peek() {
            Some('#') => true,
            Some('/') => self.peek2() == Some('/'),
            _ => false,
        }
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// Spaces and tabs only: a value must start on its key's line.
    pub fn skip_inline_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    /// Whitespace, newlines and comments; with `seps`, also `,` and `;` between entries.
    pub fn skip_blank(&mut self, seps: bool) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some(',' | ';') if seps => {
                    self.bump();
                }
                Some(_) if self.at_comment() => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// After a value: the rest of its line may hold only a separator and a comment. Returns
    /// the next significant character (the closing bracket of the enclosing block, if any)
    /// without consuming it.
    pub fn end_of_value(&mut self, closer: Option<char>, what: &str) -> Result<(), ConfigError> {
        self.skip_inline_ws();
        match self.peek() {
            None | Some('\n' | ',' | ';') => Ok(()),
            Some(c) if Some(c) == closer => Ok(()),
            Some(_) if self.at_comment() => Ok(()),
            Some(c) => Err(self.err(format!(
                "expected a new line, ',' or comment after {what}, found '{c}'"
            ))),
        }
    }

    /// A key: quoted, or a bare word up to whitespace or a separator.
    pub fn key(&mut self) -> Result<String, ConfigError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                let start = self.pos();
                self.bump();
                let mut s = String::new();
                loop {
                    match self.bump() {
                        Some(c) if c == q => return Ok(s),
                        Some('\n') | None => {
                            return Err(ConfigError::syntax(&start, "unterminated quoted key"))
                        }
                        Some(c) => s.push(c),
                    }
                }
            }
            _ => {
                let start = self.at;
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || matches!(c, '=' | ':' | '{' | '[' | ',' | ';') {
                        break;
                    }
                    if self.at_comment() {
                        break;
                    }
                    self.bump();
                }
                if self.at == start {
                    let found = self
                        .peek()
                        .map_or("end of file".into(), |c| format!("'{c}'"));
                    return Err(self.err(format!("expected a key, found {found}")));
                }
                Ok(self.src[start..self.at].to_string())
            }
        }
    }

    /// A single-quoted string: no escapes. The opening quote is next.
    pub fn single_quoted(&mut self) -> Result<String, ConfigError> {
        let start = self.pos();
        self.bump();
        let from = self.at;
        loop {
            match self.peek() {
                Some('\'') => {
                    let s = self.src[from..self.at].to_string();
                    self.bump();
                    return Ok(s);
                }
                Some(_) => {
                    self.bump();
                }
                None => return Err(ConfigError::syntax(&start, "unterminated quoted string")),
            }
        }
    }

    /// A double-quoted string with nats-server's escapes. The opening quote is next.
    pub fn double_quoted(&mut self) -> Result<String, ConfigError> {
        let start = self.pos();
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(s),
                Some('\\') => self.escape(&mut s)?,
                Some(c) => s.push(c),
                None => return Err(ConfigError::syntax(&start, "unterminated quoted string")),
            }
        }
    }

    /// `\t \n \r \" \\ \xHH`, as conf/lex.go accepts; the backslash is consumed.
    fn escape(&mut self, s: &mut String) -> Result<(), ConfigError> {
        let pos = self.pos();
        match self.bump() {
            Some('t') => s.push('\t'),
            Some('n') => s.push('\n'),
            Some('r') => s.push('\r'),
            Some('"') => s.push('"'),
            Some('\\') => s.push('\\'),
            Some('x') => {
                let hex: String = [self.bump(), self.bump()].iter().flatten().collect();
                let b = (hex.len() == 2)
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| {
                        ConfigError::syntax(
                            &pos,
                            format!("expected two hex digits after '\\x', got {hex:?}"),
                        )
                    })?;
                s.push(char::from(b));
            }
            other => {
                let c = other.map_or("end of file".into(), |c| format!("'{c}'"));
                return Err(ConfigError::syntax(
                    &pos,
                    format!(
                        "invalid escape character {c}; allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A `( ... )` block string: raw text up to a `)` alone on its line. `(` is next.
    pub fn block_string(&mut self) -> Result<String, ConfigError> {
        let start = self.pos();
        self.bump();
        let from = self.at;
        loop {
            let line_start = self.at;
            let rest = &self.src[line_start..];
            let line_len = rest.find('\n').unwrap_or(rest.len());
            if rest[..line_len].trim_end_matches('\r') == ")" && line_start > from {
                // The text ends before the newline that precedes ')'.
                let end = line_start.saturating_sub(1);
                let s = self.src[from..end.max(from)].to_string();
                for _ in 0..line_len {
                    self.bump();
                }
                return Ok(s);
            }
            if line_len == rest.len() {
                return Err(ConfigError::syntax(&start, "unterminated block string"));
            }
            for _ in 0..=line_len {
                self.bump();
            }
        }
    }

    /// A bare word as a value, classified like nats-server: booleans, `$variables`, integers
    /// with size suffixes, floats; anything else (durations, host:port, IPs) is a string.
    pub fn bare(&mut self) -> Result<Scalar, ConfigError> {
        let start = self.pos();
        let mut word = String::new();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | ';' | ']' | '}') {
                break;
            }
            self.bump();
            if c == '\\' {
                self.escape(&mut word)?;
                escaped = true;
            } else {
                word.push(c);
            }
        }
        if word.is_empty() {
            return Err(ConfigError::syntax(&start, "expected a value"));
        }
        if escaped {
            return Ok(Scalar::Str(word));
        }
        classify(&word).map_err(|m| ConfigError::syntax(&start, m))
    }
}

fn classify(word: &str) -> Result<Scalar, String> {
    match word.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => return Ok(Scalar::Bool(true)),
        "false" | "no" | "off" => return Ok(Scalar::Bool(false)),
        _ => {}
    }
    if let Some(name) = word.strip_prefix('$') {
        // A bcrypt hash written bare is a string, not a reference.
        if ["2a$", "2b$", "2x$", "2y$"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            return Ok(Scalar::Str(word.to_string()));
        }
        if name.is_empty() {
            return Err("empty variable reference '$'".into());
        }
        return Ok(Scalar::Var(name.to_string()));
    }
    if word.starts_with('.') {
        return Err(format!("floats must start with a digit: '{word}'"));
    }
    let body = word.strip_prefix('-').unwrap_or(word);
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        if word.starts_with('-') {
            return Err(format!("expected a digit after '-': '{word}'"));
        }
        return Ok(Scalar::Str(word.to_string()));
    }
    let rest = &body[digits..];
    if rest.is_empty() {
        return parse_int(word).map(Scalar::Int);
    }
    if let Some(frac) = rest.strip_prefix('.') {
        if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) {
            return word
                .parse::<f64>()
                .map(Scalar::Float)
                .map_err(|_| format!("invalid float '{word}'"));
        }
        return Ok(Scalar::Str(word.to_string()));
    }
    if let Some(mult) = size_suffix(rest) {
        let n = parse_int(&word[..word.len() - rest.len()])?;
        return n
            .checked_mul(mult)
            .map(Scalar::Int)
            .ok_or_else(|| format!("integer '{word}' is out of range"));
    }
    Ok(Scalar::Str(word.to_string()))
}

fn parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("integer '{s}' is out of range"))
}

/// nats-server's size suffixes: k/m/g/t/p/e in 1000s; with b, i or ib in 1024s.
fn size_suffix(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let mut chars = lower.chars();
    let exp = match chars.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: i64 = match chars.as_str() {
        "" => 1000,
        "b" | "i" | "ib" => 1024,
        _ => return None,
    };
    Some(base.pow(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(s: &str) -> Result<Scalar, ConfigError> {
        Cursor::new(s, None).bare()
    }

    #[test]
    fn classifies_bare_words() {
        assert_eq!(bare("42"), Ok(Scalar::Int(42)));
        assert_eq!(bare("-7"), Ok(Scalar::Int(-7)));
        assert_eq!(bare("1k"), Ok(Scalar::Int(1000)));
        assert_eq!(bare("1KB"), Ok(Scalar::Int(1024)));
        assert_eq!(bare("1kb"), Ok(Scalar::Int(1024)));
        assert_eq!(bare("2Mi"), Ok(Scalar::Int(2 << 20)));
        assert_eq!(bare("1GiB"), Ok(Scalar::Int(1 << 30)));
        assert_eq!(bare("1TB"), Ok(Scalar::Int(1 << 40)));
        assert_eq!(bare("1m"), Ok(Scalar::Int(1_000_000)));
        assert_eq!(bare("1.5"), Ok(Scalar::Float(1.5)));
        assert_eq!(bare("10s"), Ok(Scalar::Str("10s".into())));
        assert_eq!(bare("100ms"), Ok(Scalar::Str("100ms".into())));
        assert_eq!(
            bare("127.0.0.1:4222"),
            Ok(Scalar::Str("127.0.0.1:4222".into()))
        );
        assert_eq!(
            bare("localhost:4222"),
            Ok(Scalar::Str("localhost:4222".into()))
        );
        assert_eq!(bare("YES"), Ok(Scalar::Bool(true)));
        assert_eq!(bare("Off"), Ok(Scalar::Bool(false)));
        assert_eq!(bare("$FOO"), Ok(Scalar::Var("FOO".into())));
        assert_eq!(bare("$2a$11$abc"), Ok(Scalar::Str("$2a$11$abc".into())));
        assert_eq!(bare("a\\tb"), Ok(Scalar::Str("a\tb".into())));
        assert!(bare("99999999999999999999").is_err());
        assert!(bare("9000000000000EB").is_err());
        assert!(bare(".5").is_err());
        assert!(bare("-x").is_err());
        assert!(bare("$").is_err());
    }

    #[test]
    fn bare_word_stops_at_terminators() {
        let mut c = Cursor::new("abc, def", None);
        assert_eq!(c.bare(), Ok(Scalar::Str("abc".into())));
        assert_eq!(c.peek(), Some(','));
    }

    #[test]
    fn quoted_strings_and_escapes() {
        let mut c = Cursor::new(r#""a\"b\x41\n""#, None);
        assert_eq!(c.double_quoted().as_deref(), Ok("a\"bA\n"));
        let mut c = Cursor::new(r"'a\nb'", None);
        assert_eq!(c.single_quoted().as_deref(), Ok("a\\nb"));
        let e = Cursor::new("\"abc", None).double_quoted().unwrap_err();
        assert!(e.msg.contains("unterminated"), "{e}");
        let e = Cursor::new(r#""\q""#, None).double_quoted().unwrap_err();
        assert!(e.msg.contains("invalid escape"), "{e}");
        assert_eq!((e.pos.line, e.pos.col), (1, 3));
        let e = Cursor::new(r#""\xZZ""#, None).double_quoted().unwrap_err();
        assert!(e.msg.contains("hex"), "{e}");
    }

    #[test]
    fn block_strings() {
        let mut c = Cursor::new("(\nline one\nline two\n)\nnext", None);
        assert_eq!(c.block_string().as_deref(), Ok("\nline one\nline two"));
        assert_eq!(c.peek(), Some('\n'));
        assert!(Cursor::new("(\nabc", None).block_string().is_err());
    }

    #[test]
    fn positions_count_lines_and_columns() {
        let mut c = Cursor::new("ab\ncd", None);
        c.bump();
        c.bump();
        c.bump();
        c.bump();
        assert_eq!((c.pos().line, c.pos().col), (2, 2));
    }
}
