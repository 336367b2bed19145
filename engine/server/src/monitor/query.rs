//! Query-string values decoded with Go's `strconv` rules and nats-server's error texts, so a bad
//! parameter gets the same 400 answer.

/// The decoded query string; like Go's `URL.Query().Get`, the first value of a name wins and a
/// missing name reads as empty.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Query {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// `strconv.ParseBool`; absent is false.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        let v = self.get(name);
        match v {
            "" => Ok(false),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(format!(
                "Error decoding boolean for '{name}': strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(v)
            )),
        }
    }

    /// `strconv.Atoi`; absent is 0.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        let v = self.get(name);
        if v.is_empty() {
            return Ok(0);
        }
        parse_go_int(v).map_err(|why| {
            format!(
                "Error decoding int for '{name}': strconv.Atoi: parsing {}: {why}",
                go_quote(v)
            )
        })
    }

    /// `strconv.ParseUint(_, 10, 64)`; absent is 0.
    pub fn uint(&self, name: &str) -> Result<u64, String> {
        let v = self.get(name);
        if v.is_empty() {
            return Ok(0);
        }
        let why = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            match v.parse::<u64>() {
                Ok(n) => return Ok(n),
                Err(_) => "value out of range",
            }
        } else {
            "invalid syntax"
        };
        Err(format!(
            "Error decoding uint64 for '{name}': strconv.ParseUint: parsing {}: {why}",
            go_quote(v)
        ))
    }
}

fn parse_go_int(v: &str) -> Result<i64, &'static str> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    v.parse::<i64>().map_err(|_| "value out of range")
}

/// Go's `%q` for the plain strings a query holds.
fn go_quote(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("\"{v}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let q = Query::parse("subs=1&limit=x&offset=-2&subs=0&cid=7&sort=msgs%5Fto&b=maybe");
        assert_eq!(q.bool("subs"), Ok(true));
        assert_eq!(q.get("sort"), "msgs_to");
        assert_eq!(q.int("offset"), Ok(-2));
        assert_eq!(q.int("missing"), Ok(0));
        assert_eq!(q.uint("cid"), Ok(7));
        assert_eq!(
            q.int("limit").unwrap_err(),
            "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            q.bool("b").unwrap_err(),
            "Error decoding boolean for 'b': strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        let q = Query::parse("limit=99999999999999999999");
        assert!(q.int("limit").unwrap_err().ends_with("value out of range"));
    }
}
