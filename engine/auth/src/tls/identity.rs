//! Who a verified client certificate says its holder is, for `verify_and_map`.
//!
//! nats-server tries, in order: each e-mail SAN, each DNS SAN, each URI SAN as a user name;
//! then the subject as a distinguished name compared attribute by attribute with every user
//! name that parses as one (exact order first, then any order); then the subject's string
//! form with its domain components appended; then the subject's string form alone. The
//! string form is Go's `pkix.Name.String()`: known attributes only, most specific first
//! (`CN=alice,OU=eng,O=Acme,C=US`). This module reproduces that so the same user names map.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// One attribute of a distinguished name: upper-case type name (or dotted OID) and value.
type Attr = (String, String);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertIdentity {
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    /// Go's `Subject.ToRDNSequence().String()`.
    pub subject: String,
    /// `subject` followed by `,DC=..` for each domain component, when the subject has any.
    pub subject_with_dcs: Option<String>,
    /// The subject's relative distinguished names in certificate order, every attribute kept.
    rdns: Vec<Vec<Attr>>,
}

/// Go's `attributeTypeNames`, in the order `pkix.Name.ToRDNSequence` emits them.
const GO_NAME_ORDER: &[(&str, &str)] = &[
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.17", "POSTALCODE"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
];
const DC_OID: &str = "0.9.2342.19200300.100.1.25";

/// Type names a user's distinguished name may use beyond Go's, as go-ldap reads them.
fn type_name(oid: &str) -> String {
    if let Some((_, n)) = GO_NAME_ORDER.iter().find(|(o, _)| *o == oid) {
        return (*n).to_string();
    }
    match oid {
        DC_OID => "DC".to_string(),
        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
        "1.2.840.113549.1.9.1" => "EMAILADDRESS".to_string(),
        _ => oid.to_string(),
    }
}

impl CertIdentity {
    /// Reads the identity from a DER certificate; `None` when it does not parse (rustls has
    /// verified it, so that would be a certificate x509-parser cannot read).
    pub fn from_der(der: &[u8]) -> Option<CertIdentity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut id = CertIdentity::default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::RFC822Name(s) => id.emails.push((*s).to_string()),
                    GeneralName::DNSName(s) => id.dns_names.push((*s).to_string()),
                    GeneralName::URI(s) => id.uris.push((*s).to_string()),
                    _ => {}
                }
            }
        }
        for rdn in cert.subject().iter() {
            let attrs: Vec<Attr> = rdn
                .iter()
                .filter_map(|atv| {
                    let value = atv.as_str().ok()?.to_string();
                    Some((type_name(&atv.attr_type().to_id_string()), value))
                })
                .collect();
            if !attrs.is_empty() {
                id.rdns.push(attrs);
            }
        }
        id.subject = go_subject_string(&id.rdns);
        let dcs: Vec<String> = id
            .rdns
            .iter()
            .flatten()
            .filter(|(t, _)| t == "DC")
            .map(|(_, v)| format!("DC={v}"))
            .collect();
        if !dcs.is_empty() {
            id.subject_with_dcs = Some(format!("{},{}", id.subject, dcs.join(",")));
        }
        Some(id)
    }

    /// The user this certificate maps to among `users`, trying nats-server's candidates in
    /// its order. `users` is walked once per kind of candidate, so pass a cheap iterator.
    pub fn map_user<'a, I>(&self, users: I) -> Option<&'a str>
    where
        I: IntoIterator<Item = &'a str> + Clone,
    {
        let literal = |cand: &str| users.clone().into_iter().find(|u| *u == cand);
        for cand in self.emails.iter().chain(&self.dns_names).chain(&self.uris) {
            if let Some(u) = literal(cand) {
                return Some(u);
            }
        }
        if !self.rdns.is_empty() {
            let parsed: Vec<(&'a str, Vec<Vec<Attr>>)> = users
                .clone()
                .into_iter()
                .filter_map(|u| parse_dn(u).map(|dn| (u, dn)))
                .collect();
            if let Some((u, _)) = parsed.iter().find(|(_, dn)| dn_equal(dn, &self.rdns)) {
                return Some(u);
            }
            if let Some((u, _)) = parsed.iter().find(|(_, dn)| rdns_match(dn, &self.rdns)) {
                return Some(u);
            }
        }
        if let Some(s) = &self.subject_with_dcs {
            if let Some(u) = literal(s) {
                return Some(u);
            }
        }
        if self.subject.is_empty() {
            return None;
        }
        literal(&self.subject)
    }
}

/// Go's `RDNSequence.String()` over `Name.ToRDNSequence()`: only Go's named attributes, grouped
/// by type in Go's order (several values of one type form one multi-valued RDN), the last
/// common name only, printed most specific first.
fn go_subject_string(rdns: &[Vec<Attr>]) -> String {
    let mut groups: Vec<String> = Vec::new();
    for (_, name) in GO_NAME_ORDER {
        let values: Vec<&str> = rdns
            .iter()
            .flatten()
            .filter(|(t, _)| t == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let values = match *name {
            // Go keeps a single common name and serial number: the last one parsed.
            "CN" | "SERIALNUMBER" => values.last().map(|v| vec![*v]).unwrap_or_default(),
            _ => values,
        };
        if values.is_empty() {
            continue;
        }
        let group: Vec<String> = values
            .iter()
            .map(|v| format!("{name}={}", go_escape(v)))
            .collect();
        groups.push(group.join("+"));
    }
    groups.reverse();
    groups.join(",")
}

fn go_escape(v: &str) -> String {
    let n = v.chars().count();
    let mut out = String::with_capacity(v.len());
    for (k, c) in v.chars().enumerate() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k + 1 == n,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A user name read as an RFC 4514 distinguished name (`CN=alice, OU=eng+OU=ops, O=Acme`),
/// most specific first as written; `None` when it is not one.
fn parse_dn(s: &str) -> Option<Vec<Vec<Attr>>> {
    let mut rdns = Vec::new();
    for rdn in split_unescaped(s, ',') {
        let mut attrs = Vec::new();
        for atv in split_unescaped(&rdn, '+') {
            let (t, v) = atv.split_once('=')?;
            let t = t.trim();
            if t.is_empty() {
                return None;
            }
            attrs.push((t.to_ascii_uppercase(), unescape(v.trim())));
        }
        rdns.push(attrs);
    }
    // Written most specific first; certificates store least specific first.
    rdns.reverse();
    (!rdns.is_empty()).then_some(rdns)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        let last = parts.len() - 1;
        if escaped {
            parts[last].push(c);
            escaped = false;
        } else if c == '\\' {
            parts[last].push(c);
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else {
            parts[last].push(c);
        }
    }
    parts
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut escaped = false;
    for c in v.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

fn attr_eq(a: &Attr, b: &Attr) -> bool {
    a.0.eq_ignore_ascii_case(&b.0) && a.1.to_lowercase() == b.1.to_lowercase()
}

fn rdn_eq(a: &[Attr], b: &[Attr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| attr_eq(x, y)))
}

/// go-ldap's `DN.Equal`: same RDNs in the same order.
fn dn_equal(a: &[Vec<Attr>], b: &[Vec<Attr>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| rdn_eq(x, y))
}

/// go-ldap's `DN.RDNsMatch`: same RDNs in any order.
fn rdns_match(a: &[Vec<Attr>], b: &[Vec<Attr>]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| rdn_eq(x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(dn: &[(DnType, &str)], sans: Vec<SanType>) -> CertIdentity {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), *v);
        }
        p.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        let c = p.self_signed(&key).expect("cert");
        CertIdentity::from_der(c.der()).expect("parses")
    }

    #[test]
    fn subject_string_is_gos() {
        let id = cert(
            &[
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Acme, Inc"),
                (DnType::OrganizationalUnitName, "eng"),
                (DnType::CommonName, "alice"),
            ],
            vec![],
        );
        assert_eq!(id.subject, "CN=alice,OU=eng,O=Acme\\, Inc,C=US");
        assert_eq!(id.subject_with_dcs, None);
    }

    #[test]
    fn san_email_then_dns_win_over_subject() {
        let id = cert(
            &[(DnType::CommonName, "alice")],
            vec![
                SanType::Rfc822Name("alice@example.com".try_into().expect("ia5")),
                SanType::DnsName("alice.example.com".try_into().expect("ia5")),
            ],
        );
        assert_eq!(id.emails, ["alice@example.com"]);
        assert_eq!(id.dns_names, ["alice.example.com"]);
        let users = ["CN=alice", "alice.example.com", "alice@example.com"];
        assert_eq!(
            id.map_user(users.iter().copied()),
            Some("alice@example.com")
        );
        let users = ["CN=alice", "alice.example.com"];
        assert_eq!(
            id.map_user(users.iter().copied()),
            Some("alice.example.com")
        );
        let users = ["bob", "CN=alice"];
        assert_eq!(id.map_user(users.iter().copied()), Some("CN=alice"));
        assert_eq!(id.map_user(["bob"].iter().copied()), None);
    }

    #[test]
    fn dn_matches_in_any_order_and_case() {
        let id = cert(
            &[
                (DnType::OrganizationName, "Acme"),
                (DnType::CommonName, "alice"),
            ],
            vec![],
        );
        assert_eq!(
            id.map_user(["cn=Alice, o=acme"].iter().copied()),
            Some("cn=Alice, o=acme")
        );
        assert_eq!(
            id.map_user(["O=Acme,CN=alice"].iter().copied()),
            Some("O=Acme,CN=alice")
        );
        assert_eq!(id.map_user(["CN=alice,O=Other"].iter().copied()), None);
        assert_eq!(id.map_user(["CN=alice"].iter().copied()), None);
    }

    #[test]
    fn domain_components_are_appended() {
        let id = cert(
            &[
                (
                    DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
                    "example",
                ),
                (DnType::CommonName, "svc"),
            ],
            vec![],
        );
        assert_eq!(id.subject, "CN=svc");
        assert_eq!(id.subject_with_dcs.as_deref(), Some("CN=svc,DC=example"));
        assert_eq!(
            id.map_user(["CN=svc,DC=example"].iter().copied()),
            Some("CN=svc,DC=example")
        );
    }

    #[test]
    fn go_escaping() {
        assert_eq!(go_escape(" a#b "), "\\ a#b\\ ");
        assert_eq!(go_escape("#x+y"), "\\#x\\+y");
    }
}
