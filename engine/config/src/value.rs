//! The tree a nats-server configuration file parses into, and typed accessors that turn a value
//! into what an option needs while keeping its position for error messages.

pub use tachyon_settings::error::{ConfigError, Pos};

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    /// Integers, with size suffixes (`1MB`, `64KB`, `1G`) already applied.
    Int(i64),
    Float(f64),
    /// Quoted or bare strings; durations (`2m`, `10s`) stay strings until an option reads them.
    Str(String),
    Array(Vec<Item>),
    Map(Map),
}

/// Go's `%v` of a value, as nats-server's "got %v" errors print it.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", v.value)?;
                }
                f.write_str("]")
            }
            Value::Map(_) => f.write_str("map[...]"),
        }
    }
}

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub pos: Pos,
}

/// A block's keys in file order. Keys compare case-insensitively, as nats-server's do; a key
/// written twice keeps its last value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    pub entries: Vec<(String, Item)>,
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: String, item: Item) {
        self.entries.push((key, item));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Item)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl Item {
    fn kind(&self) -> &'static str {
        match self.value {
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    fn wrong(&self, key: &str, want: &str) -> ConfigError {
        ConfigError::at(
            &self.pos,
            format!("'{key}': expected {want}, got {}", self.kind()),
        )
    }

    pub fn as_str(&self, key: &str) -> Result<&str, ConfigError> {
        match &self.value {
            Value::Str(s) => Ok(s),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    /// A string, or a number written bare where a string is expected (`user: 1234`).
    pub fn to_text(&self, key: &str) -> Result<String, ConfigError> {
        match &self.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    pub fn as_bool(&self, key: &str) -> Result<bool, ConfigError> {
        match &self.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong(key, "a boolean")),
        }
    }

    pub fn as_int(&self, key: &str) -> Result<i64, ConfigError> {
        match &self.value {
            Value::Int(i) => Ok(*i),
            _ => Err(self.wrong(key, "an integer")),
        }
    }

    /// A non-negative integer that fits `usize` (sizes, counts).
    pub fn as_usize(&self, key: &str) -> Result<usize, ConfigError> {
        let i = self.as_int(key)?;
        usize::try_from(i)
            .map_err(|_| ConfigError::at(&self.pos, format!("'{key}': {i} is out of range")))
    }

    /// A duration as nats-server reads one: a Go duration string (`2m`, `1.5s`, `100ms`,
    /// `1h30m`) or a bare number of seconds.
    pub fn as_duration(&self, key: &str) -> Result<Duration, ConfigError> {
        match &self.value {
            Value::Int(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            Value::Float(f) if *f >= 0.0 => Ok(Duration::from_secs_f64(*f)),
            Value::Str(s) => parse_go_duration(s).ok_or_else(|| {
                ConfigError::at(&self.pos, format!("'{key}': invalid duration {s:?}"))
            }),
            _ => Err(self.wrong(key, "a duration")),
        }
    }

    pub fn as_map(&self, key: &str) -> Result<&Map, ConfigError> {
        match &self.value {
            Value::Map(m) => Ok(m),
            _ => Err(self.wrong(key, "a map")),
        }
    }

    pub fn as_array(&self, key: &str) -> Result<&[Item], ConfigError> {
        match &self.value {
            Value::Array(a) => Ok(a),
            _ => Err(self.wrong(key, "an array")),
        }
    }

    /// An array of strings, or a single string standing for a one-element array (nats-server
    /// accepts both for permission lists).
    pub fn as_str_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match &self.value {
            Value::Str(s) => Ok(vec![s.clone()]),
            Value::Array(a) => a.iter().map(|i| i.to_text(key)).collect(),
            _ => Err(self.wrong(key, "a string or an array of strings")),
        }
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units ns, us (µs), ms, s, m, h.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("5d"), None);
    }

    #[test]
    fn keys_are_case_insensitive_and_last_wins() {
        let item = |i| Item {
            value: Value::Int(i),
            pos: Pos::default(),
        };
        let mut m = Map::default();
        m.insert("Port".into(), item(1));
        m.insert("port".into(), item(2));
        assert_eq!(m.get("PORT").map(|i| &i.value), Some(&Value::Int(2)));
    }
}
