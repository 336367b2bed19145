//! nats-server's config format into a [`Map`]: `key: value`, `key = value`, `key value`,
//! `{}` blocks, `[]` arrays, `include` files and `$VARIABLE` references.
//!
//! Variables resolve against the keys already written in the enclosing blocks (innermost
//! first), then the environment, whose value is parsed like a config value (`PORT=4222` gives
//! an integer). An included file is parsed on its own (it does not see the includer's
//! variables, as in nats-server) and its keys are spliced in where `include` stands.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer::{Cursor, Scalar};
use super::value::{ConfigError, Item, Map, Pos, Value};

/// Nested includes beyond this are taken for a cycle.
const MAX_INCLUDE_DEPTH: usize = 10;
/// `$A` whose environment value is `$B`...: beyond this it is taken for a cycle.
const MAX_ENV_DEPTH: usize = 10;
/// Blocks nested deeper than this are refused, so hostile input cannot exhaust the stack.
const MAX_NESTING: usize = 64;

/// A parsed file: its top-level block, and the positions of the values that some `$reference`
/// used. nats-server does not call a top-level key unknown when it only served as a variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub map: Map,
    pub used_vars: HashSet<(u32, u32, Option<Arc<PathBuf>>)>,
}

impl Document {
    pub fn is_used_var(&self, pos: &Pos) -> bool {
        self.used_vars
            .contains(&(pos.line, pos.col, pos.file.clone()))
    }
}

/// Reads and parses a config file.
pub fn parse_file(path: &Path) -> Result<Document, ConfigError> {
    parse_file_at(path, 0, &Pos::default())
}

fn parse_file_at(path: &Path, depth: usize, from: &Pos) -> Result<Document, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let msg = format!("error opening config file {}: {e}", path.display());
        ConfigError::at(from, msg)
    })?;
    Parser::new(&text, Some(Arc::new(path.to_path_buf())), depth, 0).document()
}

/// Parses config text; `file` names it in positions and anchors relative includes.
pub fn parse_str(text: &str, file: Option<&Path>) -> Result<Document, ConfigError> {
    Parser::new(text, file.map(|f| Arc::new(f.to_path_buf())), 0, 0).document()
}

struct Parser<'a> {
    cur: Cursor<'a>,
    file: Option<Arc<PathBuf>>,
    /// The blocks being built, outermost first: variables are looked up here.
    scopes: Vec<Map>,
    used: HashSet<(u32, u32, Option<Arc<PathBuf>>)>,
    include_depth: usize,
    env_depth: usize,
    /// Blocks and arrays open around the current value.
    nesting: usize,
}

impl<'a> Parser<'a> {
    fn new(
        text: &'a str,
        file: Option<Arc<PathBuf>>,
        include_depth: usize,
        env_depth: usize,
    ) -> Self {
        Parser {
            cur: Cursor::new(text, file.clone()),
            file,
            scopes: Vec::new(),
            used: HashSet::new(),
            include_depth,
            env_depth,
            nesting: 0,
        }
    }

    fn document(mut self) -> Result<Document, ConfigError> {
        self.cur.skip_blank(false);
        // nats-server allows the whole file to be wrapped in one pair of braces.
        let wrapped = self.cur.peek() == Some('{');
        let open = self.cur.pos();
        if wrapped {
            self.cur.bump();
        }
        self.scopes.push(Map::default());
        self.entries(wrapped.then_some(('}', open)))?;
        if wrapped {
            self.cur.skip_blank(true);
            if !self.cur.at_eof() {
                return Err(self.cur.err("unexpected text after the closing '}'"));
            }
        }
        let map = self.scopes.pop().unwrap_or_default();
        Ok(Document {
            map,
            used_vars: self.used,
        })
    }

    /// Entries into the innermost scope until `closer` (or the end of the file at top level).
    fn entries(&mut self, closer: Option<(char, Pos)>) -> Result<(), ConfigError> {
        loop {
            self.cur.skip_blank(true);
            match (self.cur.peek(), &closer) {
                (None, None) => return Ok(()),
                (None, Some((_, open))) => {
                    return Err(ConfigError::syntax(open, "unterminated block: missing '}'"))
                }
                (Some(c), Some((want, _))) if c == *want => {
                    self.cur.bump();
                    return Ok(());
                }
                (Some(c @ ('}' | ']')), _) => {
                    return Err(self.cur.err(format!("unexpected '{c}'")));
                }
                _ => {}
            }
            let key_pos = self.cur.pos();
            let key = self.cur.key()?;
            let ws_after_key = matches!(self.cur.peek(), Some(' ' | '\t'));
            // As nats-server's lexer (`lexKeyEnd`): any whitespace, newlines included, may
            // stand between a key and its separator or value (`websocket\n{`).
            while self.cur.peek().is_some_and(char::is_whitespace) {
                self.cur.bump();
            }
            if key == "include" && ws_after_key && !matches!(self.cur.peek(), Some('=' | ':')) {
                self.include(&key_pos)?;
            } else {
                if matches!(self.cur.peek(), Some('=' | ':')) {
                    self.cur.bump();
                    self.cur.skip_inline_ws();
                }
                let mut item = self.value(&key, &key_pos)?;
                // nats-server reports a setting's errors at its key.
                item.pos = key_pos;
                if let Some(scope) = self.scopes.last_mut() {
                    scope.insert(key.clone(), item);
                }
            }
            let close = closer.as_ref().map(|(c, _)| *c);
            self.cur.end_of_value(close, &format!("'{key}'"))?;
        }
    }

    fn include(&mut self, at: &Pos) -> Result<(), ConfigError> {
        let pos = self.cur.pos();
        let name = match self.cur.peek() {
            Some('\'') => self.cur.single_quoted()?,
            Some('"') => self.cur.double_quoted()?,
            _ => match self.cur.bare()? {
                Scalar::Str(s) => s,
                _ => return Err(ConfigError::syntax(&pos, "include needs a file name")),
            },
        };
        if self.include_depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::syntax(
                at,
                format!("include '{name}': nested too deep (a cycle?)"),
            ));
        }
        let base = self
            .file
            .as_ref()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let path = base.join(&name);
        let doc = parse_file_at(&path, self.include_depth + 1, &pos).map_err(|e| {
            if e.pos.file.is_some() {
                e
            } else {
                ConfigError::syntax(
                    &pos,
                    format!("error parsing include file '{name}': {}", e.msg),
                )
            }
        })?;
        self.used.extend(doc.used_vars);
        if let Some(scope) = self.scopes.last_mut() {
            scope.entries.extend(doc.map.entries);
        }
        Ok(())
    }

    fn value(&mut self, key: &str, key_pos: &Pos) -> Result<Item, ConfigError> {
        let pos = self.cur.pos();
        let value = match self.cur.peek() {
            None | Some('\n' | ',' | ';' | '}' | ']') => {
                return Err(ConfigError::syntax(
                    key_pos,
                    format!("missing value for '{key}'"),
                ))
            }
            Some('#') => {
                return Err(ConfigError::syntax(
                    key_pos,
                    format!("missing value for '{key}'"),
                ))
            }
            Some('/') if self.cur.peek2() == Some('/') => {
                return Err(ConfigError::syntax(
                    key_pos,
                    format!("missing value for '{key}'"),
                ))
            }
            Some('{' | '[') if self.nesting >= MAX_NESTING => {
                return Err(self.cur.err("blocks nested too deep"));
            }
            Some('{') => {
                self.cur.bump();
                self.nesting += 1;
                self.scopes.push(Map::default());
                let r = self.entries(Some(('}', pos.clone())));
                let map = self.scopes.pop().unwrap_or_default();
                self.nesting -= 1;
                r?;
                Value::Map(map)
            }
            Some('[') => {
                self.nesting += 1;
                let r = self.array(&pos);
                self.nesting -= 1;
                Value::Array(r?)
            }
            Some('"') => Value::Str(self.cur.double_quoted()?),
            Some('\'') => Value::Str(self.cur.single_quoted()?),
            Some('(') => Value::Str(self.cur.block_string()?),
            _ => return self.scalar(pos),
        };
        Ok(Item { value, pos })
    }

    fn array(&mut self, open: &Pos) -> Result<Vec<Item>, ConfigError> {
        self.cur.bump();
        let mut items = Vec::new();
        loop {
            self.cur.skip_blank(false);
            match self.cur.peek() {
                None => return Err(ConfigError::syntax(open, "unterminated array: missing ']'")),
                Some(']') => {
                    self.cur.bump();
                    return Ok(items);
                }
                Some(',') => return Err(self.cur.err("unexpected ',' in array: missing value")),
                _ => {}
            }
            items.push(self.value("array element", open)?);
            self.cur.skip_inline_ws();
            match self.cur.peek() {
                Some(',') => {
                    self.cur.bump();
                }
                Some(']' | '\n') | None => {}
                Some(_) => self.cur.end_of_value(Some(']'), "an array element")?,
            }
        }
    }

    fn scalar(&mut self, pos: Pos) -> Result<Item, ConfigError> {
        let value = match self.cur.bare()? {
            Scalar::Str(s) => Value::Str(s),
            Scalar::Int(i) => Value::Int(i),
            Scalar::Float(f) => Value::Float(f),
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Var(name) => return self.variable(&name, pos),
        };
        Ok(Item { value, pos })
    }

    /// A reference takes the referenced value, positioned where the reference is written.
    fn variable(&mut self, name: &str, pos: Pos) -> Result<Item, ConfigError> {
        for scope in self.scopes.iter().rev() {
            if let Some(found) = scope.entries.iter().rev().find(|(k, _)| k == name) {
                let item = &found.1;
                self.used
                    .insert((item.pos.line, item.pos.col, item.pos.file.clone()));
                return Ok(Item {
                    value: item.value.clone(),
                    pos,
                });
            }
        }
        let Ok(text) = std::env::var(name) else {
            return Err(ConfigError::syntax(
                &pos,
                format!("variable reference for '{name}' can not be found"),
            ));
        };
        if self.env_depth >= MAX_ENV_DEPTH {
            return Err(ConfigError::syntax(
                &pos,
                format!("variable reference cycle for '{name}'"),
            ));
        }
        let line = format!("v={text}");
        let doc = Parser::new(&line, None, self.include_depth, self.env_depth + 1)
            .document()
            .map_err(|e| {
                ConfigError::syntax(
                    &pos,
                    format!("variable '{name}' from the environment: {}", e.msg),
                )
            })?;
        let value = doc
            .map
            .get("v")
            .map(|i| i.value.clone())
            .unwrap_or(Value::Str(String::new()));
        Ok(Item { value, pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Map {
        match parse_str(s, None) {
            Ok(d) => d.map,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn err(s: &str) -> ConfigError {
        match parse_str(s, None) {
            Ok(d) => panic!("{s:?} parsed: {:?}", d.map),
            Err(e) => e,
        }
    }

    fn v<'m>(m: &'m Map, k: &str) -> &'m Value {
        &m.get(k).unwrap_or_else(|| panic!("no {k}")).value
    }

    #[test]
    fn three_separators() {
        let m = parse("a: 1\nb = 2\nc 3\nd:4\ne=5");
        for (k, n) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)] {
            assert_eq!(v(&m, k), &Value::Int(n), "{k}");
        }
    }

    #[test]
    fn strings_booleans_numbers() {
        let m = parse(
            "s1: 'single'\ns2: \"dou\\\"ble\"\ns3: bare\nb1: true\nb2: OFF\nb3: yes\nf: 2.5\n\
             n: -3\nsize: 64KB\nd: 2m30s\nip: 127.0.0.1:4222\ndate: 2024-01-02T03:04:05Z",
        );
        assert_eq!(v(&m, "s1"), &Value::Str("single".into()));
        assert_eq!(v(&m, "s2"), &Value::Str("dou\"ble".into()));
        assert_eq!(v(&m, "s3"), &Value::Str("bare".into()));
        assert_eq!(v(&m, "b1"), &Value::Bool(true));
        assert_eq!(v(&m, "b2"), &Value::Bool(false));
        assert_eq!(v(&m, "b3"), &Value::Bool(true));
        assert_eq!(v(&m, "f"), &Value::Float(2.5));
        assert_eq!(v(&m, "n"), &Value::Int(-3));
        assert_eq!(v(&m, "size"), &Value::Int(65536));
        assert_eq!(v(&m, "d"), &Value::Str("2m30s".into()));
        assert_eq!(v(&m, "ip"), &Value::Str("127.0.0.1:4222".into()));
        assert_eq!(v(&m, "date"), &Value::Str("2024-01-02T03:04:05Z".into()));
    }

    #[test]
    fn comments_and_separators() {
        let m = parse("# top\n// also\na: 1 # trailing\nb: 2; c: 3, d: 4 // x\n");
        assert_eq!(v(&m, "a"), &Value::Int(1));
        assert_eq!(v(&m, "b"), &Value::Int(2));
        assert_eq!(v(&m, "c"), &Value::Int(3));
        assert_eq!(v(&m, "d"), &Value::Int(4));
    }

    #[test]
    fn blocks_and_arrays() {
        let m = parse(
            "authorization {\n  user: a\n  password = \"b\"\n  inner { x: 1 }\n}\n\
             list: [1, two, \"three\"]\nlines: [\n  a\n  b, # c\n  {k: v}\n  [x]\n]\nempty: {}\nnone: []",
        );
        let auth = match v(&m, "authorization") {
            Value::Map(a) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(v(auth, "user"), &Value::Str("a".into()));
        assert_eq!(v(auth, "password"), &Value::Str("b".into()));
        assert!(matches!(v(auth, "inner"), Value::Map(_)));
        match v(&m, "list") {
            Value::Array(a) => {
                let vals: Vec<_> = a.iter().map(|i| i.value.clone()).collect();
                assert_eq!(
                    vals,
                    vec![
                        Value::Int(1),
                        Value::Str("two".into()),
                        Value::Str("three".into())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match v(&m, "lines") {
            Value::Array(a) => {
                assert_eq!(a.len(), 4);
                assert!(matches!(a[2].value, Value::Map(_)));
                assert!(matches!(a[3].value, Value::Array(_)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(v(&m, "empty"), &Value::Map(Map::default()));
        assert_eq!(v(&m, "none"), &Value::Array(vec![]));
    }

    #[test]
    fn whole_file_in_braces() {
        let m = parse("{\n port: 1\n}\n");
        assert_eq!(v(&m, "port"), &Value::Int(1));
    }

    #[test]
    fn positions() {
        let d = parse_str(
            "\n  port: 4222\nb {\n c: x\n}",
            Some(Path::new("/t/a.conf")),
        )
        .unwrap();
        let p = &d.map.get("port").unwrap().pos;
        assert_eq!((p.line, p.col), (2, 3));
        assert_eq!(p.to_string(), "/t/a.conf:2:3");
        let e = parse_str("a: 1\nb: \"x", Some(Path::new("f.conf"))).unwrap_err();
        assert_eq!(e.located(), "f.conf:2:4: unterminated quoted string");
        assert_eq!(
            e.to_string(),
            "Parse error on line 2: 'unterminated quoted string'"
        );
    }

    #[test]
    fn variables_from_scopes_and_env() {
        let m = parse("PORT: 4222\nport: $PORT\nb { inner: 7, x: $inner, y: $PORT }");
        assert_eq!(v(&m, "port"), &Value::Int(4222));
        let b = match v(&m, "b") {
            Value::Map(b) => b.clone(),
            _ => panic!(),
        };
        assert_eq!(v(&b, "x"), &Value::Int(7));
        assert_eq!(v(&b, "y"), &Value::Int(4222));

        std::env::set_var("TACHYON_CFG_TEST_N", "8KB");
        std::env::set_var("TACHYON_CFG_TEST_S", "hello");
        let m = parse("n: $TACHYON_CFG_TEST_N\ns: $TACHYON_CFG_TEST_S");
        assert_eq!(v(&m, "n"), &Value::Int(8192));
        assert_eq!(v(&m, "s"), &Value::Str("hello".into()));

        let d = parse_str("X: 1\na: $X\nunused: 2", None).unwrap();
        assert!(d.is_used_var(&d.map.get("X").unwrap().pos));
        assert!(!d.is_used_var(&d.map.get("unused").unwrap().pos));
    }

    #[test]
    fn env_cycle_is_an_error() {
        std::env::set_var("TACHYON_CFG_CYCLE", "$TACHYON_CFG_CYCLE");
        let e = err("a: $TACHYON_CFG_CYCLE");
        assert!(e.msg.contains("cycle"), "{e}");
    }

    #[test]
    fn unknown_variable() {
        let e = err("a: 1\nb: $NOPE_TACHYON_UNSET");
        assert!(
            e.msg.contains("'NOPE_TACHYON_UNSET' can not be found"),
            "{e}"
        );
        assert_eq!((e.pos.line, e.pos.col), (2, 4));
        // A later key is not visible earlier, nor a sibling block's key.
        err("a: $b\nb: 1");
        err("x { y: 1 }\nz: $y");
    }

    #[test]
    fn includes() {
        let dir = std::env::temp_dir().join(format!("tachyon-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/auth.conf"), "user: u\npass: 'p'\n").unwrap();
        std::fs::write(
            dir.join("main.conf"),
            "port: 1\nauthorization {\n  include 'sub/auth.conf'\n}\ninclude \"sub/more.conf\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("sub/more.conf"), "max_payload: 1KB\n").unwrap();
        let d = parse_file(&dir.join("main.conf")).unwrap();
        let auth = match v(&d.map, "authorization") {
            Value::Map(a) => a.clone(),
            _ => panic!(),
        };
        assert_eq!(v(&auth, "user"), &Value::Str("u".into()));
        assert_eq!(v(&d.map, "max_payload"), &Value::Int(1024));
        let pos = &d.map.get("max_payload").unwrap().pos;
        assert!(pos.file.as_ref().unwrap().ends_with("sub/more.conf"));

        std::fs::write(dir.join("bad.conf"), "include 'missing.conf'\n").unwrap();
        let e = parse_file(&dir.join("bad.conf")).unwrap_err();
        assert!(e.msg.contains("missing.conf"), "{e}");
        assert!(e.located().contains("bad.conf:1:9"), "{e}");

        std::fs::write(dir.join("loop.conf"), "include 'loop.conf'\n").unwrap();
        let e = parse_file(&dir.join("loop.conf")).unwrap_err();
        assert!(e.msg.contains("too deep"), "{e}");

        std::fs::write(dir.join("inner_bad.conf"), "include 'sub/broken.conf'\n").unwrap();
        std::fs::write(dir.join("sub/broken.conf"), "a: [1,\n").unwrap();
        let e = parse_file(&dir.join("inner_bad.conf")).unwrap_err();
        assert!(e.located().contains("broken.conf:1:4"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed() {
        for (text, want, line, col) in [
            ("a: \"abc", "unterminated quoted string", 1, 4),
            ("a: 'abc\n", "unterminated quoted string", 1, 4),
            ("a {\n b: 1\n", "unterminated block", 1, 3),
            ("a: [1, 2\n", "unterminated array", 1, 4),
            ("port:\nb: 1", "missing value for 'port'", 1, 1),
            ("port\n", "missing value for 'port'", 1, 1),
            ("port: # nothing", "missing value for 'port'", 1, 1),
            ("a: 1 2", "expected a new line", 1, 6),
            ("}", "unexpected '}'", 1, 1),
            ("a: [1,,2]", "missing value", 1, 7),
            ("a: .5", "floats must start with a digit", 1, 4),
            ("a: 99999999999999999999", "out of range", 1, 4),
            ("= 3", "expected a key", 1, 1),
            ("{ a: 1 } b", "unexpected text", 1, 10),
        ] {
            let e = err(text);
            assert!(e.msg.contains(want), "{text:?}: {e}");
            assert_eq!((e.pos.line, e.pos.col), (line, col), "{text:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("a: {}", "[".repeat(100_000));
        assert!(parse_str(&text, None).is_err());
        let text = format!("a: {}", "{b: ".repeat(100_000));
        assert!(parse_str(&text, None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_str(&s, None);
        }

        #[test]
        fn never_panics_on_config_alphabet(s in "[a-z0-9 :=\\[\\]{},;#/\"'\\\\$()\n.\\-]{0,120}") {
            let _ = parse_str(&s, None);
        }
    }
}

#[cfg(test)]
mod next_line_tests {
    use super::*;

    /// nats-server takes a block's brace (or a value) on the line after its key, as client
    /// test suites write `websocket\n{ ... }`.
    #[test]
    fn a_value_may_start_on_the_next_line() {
        let doc = parse_str(
            "websocket\n{\n    port: 8080\n    no_tls: true\n}\nport\n  4222\n",
            None,
        )
        .expect("parses");
        let ws = doc.map.get("websocket").expect("websocket");
        let Value::Map(m) = &ws.value else {
            panic!("{:?}", ws.value)
        };
        assert!(matches!(
            m.get("port").map(|i| &i.value),
            Some(Value::Int(8080))
        ));
        assert!(matches!(
            doc.map.get("port").map(|i| &i.value),
            Some(Value::Int(4222))
        ));
    }
}
