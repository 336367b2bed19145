//! Client TLS against the real binary: async-nats over TLS (pub/sub/request), mutual TLS with
//! client certificates, plaintext clients refused. Certificates are generated per test with
//! rcgen into a TempDir; nothing is committed.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions};
use common::{RawConn, Server, TempDir};
use futures::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use tokio::time::timeout;

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);
const PROBE: &[u8] = b"\x00probe";

/// A CA, a server certificate for 127.0.0.1/localhost and client certificates, as PEM files.
struct Certs {
    dir: TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = TempDir::new("tls-certs");
        let ca_key = KeyPair::generate().expect("key");
        let ca_signer = KeyPair::from_pem(&ca_key.serialize_pem()).expect("key copy");
        let ca = ca_with_key("Tachyon Test CA", ca_key);
        let certs = Certs { dir };
        certs.write("ca.pem", &ca.pem());
        // An X.509 v1 client certificate, which Go's TLS accepts and rcgen cannot make.
        let oldie_key = KeyPair::generate().expect("key");
        let oldie = v1_certificate(ca.der(), &ca_signer, "oldie", &oldie_key);
        certs.write("oldie.pem", &pem("CERTIFICATE", &oldie));
        certs.write("oldie-key.pem", &oldie_key.serialize_pem());
        // The same from a CA the server does not trust.
        let rogue_key = KeyPair::generate().expect("key");
        let rogue_signer = KeyPair::from_pem(&rogue_key.serialize_pem()).expect("key copy");
        let rogue = ca_with_key("Tachyon Test CA", rogue_key);
        let forged = v1_certificate(rogue.der(), &rogue_signer, "oldie", &oldie_key);
        certs.write("forged.pem", &pem("CERTIFICATE", &forged));
        certs.write("forged-key.pem", &oldie_key.serialize_pem());
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        server
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        certs.issue("server", server, &ca);
        let mut alice = CertificateParams::default();
        alice.distinguished_name.push(DnType::CommonName, "alice");
        alice
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        alice.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        certs.issue("alice", alice, &ca);
        // A client certificate from a CA the server does not trust.
        let rogue_ca = ca_for("Rogue CA");
        let mut mallory = CertificateParams::default();
        mallory
            .distinguished_name
            .push(DnType::CommonName, "mallory");
        mallory.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        certs.issue("mallory", mallory, &rogue_ca);
        certs
    }

    fn write(&self, name: &str, pem: &str) {
        if let Err(e) = std::fs::write(self.path(name), pem) {
            panic!("write {name}: {e}");
        }
    }

    fn issue(&self, name: &str, params: CertificateParams, ca: &CertifiedIssuer<'_, KeyPair>) {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, ca).expect("sign");
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}-key.pem"), &key.serialize_pem());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Server flags for TLS, with `--tlsverify` when `verify`.
    fn server_args(&self, verify: bool) -> Vec<String> {
        let mut args = vec![
            "--tlscert".to_string(),
            self.arg("server.pem"),
            "--tlskey".to_string(),
            self.arg("server-key.pem"),
        ];
        if verify {
            args.extend([
                "--tlsverify".to_string(),
                "--tlscacert".to_string(),
                self.arg("ca.pem"),
            ]);
        } else {
            args.push("--tls".to_string());
        }
        args
    }

    /// async-nats options trusting the test CA, optionally presenting `client`'s certificate.
    fn client(&self, client: Option<&str>) -> ConnectOptions {
        let mut o = ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(self.path("ca.pem"));
        if let Some(name) = client {
            o = o.add_client_certificate(
                self.path(&format!("{name}.pem")),
                self.path(&format!("{name}-key.pem")),
            );
        }
        o
    }
}

fn ca_for(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    ca_with_key(name, KeyPair::generate().expect("key"))
}

fn ca_with_key(name: &str, key: KeyPair) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, key).expect("ca")
}

/// One DER element.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = contents.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// The first DER element of `input` (whole) and the rest.
fn der_split(input: &[u8]) -> (&[u8], &[u8]) {
    let first = input[1];
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, 2 + n)
    };
    input.split_at(head + len)
}

/// The contents of the DER element at the start of `input`.
fn der_contents(input: &[u8]) -> &[u8] {
    let (whole, _) = der_split(input);
    let first = whole[1];
    let head = if first < 0x80 {
        2
    } else {
        2 + (first & 0x7f) as usize
    };
    &whole[head..]
}

/// A version 1 certificate (no version field, no extensions) for CN=`cn` with `key`, signed
/// by the CA whose certificate is `ca_der` and whose key is `ca_key` (ECDSA P-256 SHA-256).
fn v1_certificate(ca_der: &[u8], ca_key: &KeyPair, cn: &str, key: &KeyPair) -> Vec<u8> {
    use rcgen::{PublicKeyData, SigningKey};
    // The CA's subject: TBSCertificate's sixth element (version, serial, signature algorithm,
    // issuer, validity, subject).
    let tbs = der_contents(der_contents(ca_der));
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (field, after) = der_split(rest);
        fields.push(field);
        rest = after;
    }
    let ca_subject = fields[5].to_vec();
    let ecdsa_sha256 = der(
        0x30,
        &der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
    );
    let name = der(
        0x30,
        &der(
            0x31,
            &der(
                0x30,
                &[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, cn.as_bytes())].concat(),
            ),
        ),
    );
    let validity = der(
        0x30,
        &[der(0x17, b"250101000000Z"), der(0x17, b"491231235959Z")].concat(),
    );
    let tbs = der(
        0x30,
        &[
            der(0x02, &[0x05]),
            ecdsa_sha256.clone(),
            ca_subject,
            validity,
            name,
            key.subject_public_key_info(),
        ]
        .concat(),
    );
    let signature = ca_key.sign(&tbs).expect("sign");
    let bits = [&[0u8][..], &signature].concat();
    der(0x30, &[tbs, ecdsa_sha256, der(0x03, &bits)].concat())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn start(args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::tachyon(SHARDS, &args)
}

async fn connect(opts: ConnectOptions, url: &str) -> Result<Client, String> {
    match timeout(STEP, opts.connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

async fn must_connect(opts: ConnectOptions, url: &str) -> Client {
    match connect(opts, url).await {
        Ok(c) => c,
        Err(e) => panic!("connect {url}: {e}"),
    }
}

/// Publishes on one connection, receives on another (4 shards: likely another shard), and
/// answers a request, all over TLS.
async fn exercise(a: &Client, b: &Client) {
    let mut sub = b.subscribe("tls.data").await.expect("sub");
    let mut service = b.subscribe("tls.svc").await.expect("sub");
    b.flush().await.expect("flush");
    // async-nats's flush sends no PING, so nothing proves the interest reached a's shard:
    // probe until one arrives; one publisher's messages keep their order after it.
    let deadline = Instant::now() + STEP;
    loop {
        a.publish("tls.data", PROBE.into()).await.expect("probe");
        a.flush().await.expect("flush");
        if let Ok(Some(_)) = timeout(Duration::from_millis(100), sub.next()).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "interest never reached the publisher's shard"
        );
    }
    let big = vec![b'x'; 100_000];
    for i in 0..50u32 {
        let payload = if i == 25 {
            big.clone()
        } else {
            i.to_string().into_bytes()
        };
        a.publish("tls.data", payload.into()).await.expect("pub");
    }
    a.flush().await.expect("flush");
    for i in 0..50u32 {
        let m = loop {
            let m = timeout(STEP, sub.next())
                .await
                .expect("message in time")
                .expect("subscription open");
            if m.payload.as_ref() != PROBE {
                break m;
            }
        };
        if i == 25 {
            assert_eq!(m.payload.len(), big.len(), "message {i}: the large one");
        } else {
            let got = String::from_utf8_lossy(&m.payload[..m.payload.len().min(20)]).into_owned();
            assert_eq!(got, i.to_string(), "message {i} in order");
        }
    }
    let responder = b.clone();
    tokio::spawn(async move {
        if let Some(req) = service.next().await {
            if let Some(reply) = req.reply {
                let _ = responder.publish(reply, "pong".into()).await;
                let _ = responder.flush().await;
            }
        }
    });
    let resp = timeout(STEP, a.request("tls.svc", "ping".into()))
        .await
        .expect("reply in time")
        .expect("request");
    assert_eq!(resp.payload.as_ref(), b"pong");
}

#[tokio::test]
async fn async_nats_pub_sub_request_over_tls() {
    let certs = Certs::new();
    let server = start(&certs.server_args(false));
    let raw = RawConn::connect(server.port, STEP);
    assert!(raw.info.contains("\"tls_required\":true"), "{}", raw.info);
    assert!(!raw.info.contains("tls_verify"), "{}", raw.info);
    assert!(
        server.log().contains("TLS required for client connections"),
        "{}",
        server.log()
    );
    let a = must_connect(certs.client(None), &server.url).await;
    let b = must_connect(certs.client(None), &server.url).await;
    exercise(&a, &b).await;
}

#[tokio::test]
async fn plaintext_client_is_closed_without_an_answer() {
    let certs = Certs::new();
    let server = start(&certs.server_args(false));
    let mut raw = RawConn::connect(server.port, STEP);
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    let got = raw.read_to_close(STEP);
    assert!(got.closed, "server must close a plaintext client");
    // nats-server says nothing to it either (no PONG, no TLS alert bytes).
    assert!(got.bytes.is_empty(), "{:?}", got.text());
    // And the server still serves TLS clients afterwards.
    let c = must_connect(certs.client(None), &server.url).await;
    c.flush().await.expect("flush");
}

#[tokio::test]
async fn silent_client_is_cut_at_the_handshake_timeout() {
    let certs = Certs::new();
    let server = start(&certs.server_args(false));
    let mut raw = RawConn::connect(server.port, STEP);
    let t0 = Instant::now();
    let got = raw.read_to_close(STEP);
    assert!(got.closed, "handshake timeout must close the connection");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(4500),
        "closed after {waited:?}, default timeout is 2s"
    );
}

#[tokio::test]
async fn mutual_tls_needs_a_certificate_from_the_ca() {
    let certs = Certs::new();
    let server = start(&certs.server_args(true));
    let raw = RawConn::connect(server.port, STEP);
    assert!(raw.info.contains("\"tls_required\":true"), "{}", raw.info);
    assert!(raw.info.contains("\"tls_verify\":true"), "{}", raw.info);

    let a = must_connect(certs.client(Some("alice")), &server.url).await;
    let b = must_connect(certs.client(Some("alice")), &server.url).await;
    exercise(&a, &b).await;

    let refused = connect(certs.client(None), &server.url).await;
    assert!(refused.is_err(), "no client certificate must be refused");
    let refused = connect(certs.client(Some("mallory")), &server.url).await;
    assert!(
        refused.is_err(),
        "an untrusted client certificate must be refused"
    );
    // The refusals did not disturb the accepted clients.
    a.flush().await.expect("flush after refusals");
}

/// A config file with a `tls {}` block holding `extra`, in the certificates' folder.
fn config_file(certs: &Certs, extra: &str) -> String {
    let text = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n{extra}\n}}\n",
        certs.arg("server.pem"),
        certs.arg("server-key.pem"),
        certs.arg("ca.pem"),
    );
    certs.write("server.conf", &text);
    certs.arg("server.conf")
}

#[tokio::test]
async fn handshake_first_from_the_config_file() {
    let certs = Certs::new();
    let conf = config_file(&certs, "  handshake_first: true");
    let server = start(&["-c".to_string(), conf]);
    // INFO only comes after the handshake: a plaintext client hears nothing.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    raw.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut raw, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no plaintext INFO before the handshake");
    let a = must_connect(certs.client(None).tls_first(), &server.url).await;
    let b = must_connect(certs.client(None).tls_first(), &server.url).await;
    exercise(&a, &b).await;
    // A client that waits for INFO first cannot connect.
    assert!(connect(certs.client(None), &server.url).await.is_err());
}

#[tokio::test]
async fn handshake_first_with_a_fallback_delay_serves_both_orders() {
    let certs = Certs::new();
    for (setting, delay) in [
        ("  handshake_first: 300ms", Duration::from_millis(300)),
        ("  handshake_first: auto", Duration::from_millis(50)),
    ] {
        let conf = config_file(&certs, setting);
        let server = start(&["-c".to_string(), conf]);
        // A client that says nothing gets INFO once the delay passed, not before.
        let t0 = Instant::now();
        let raw = RawConn::connect(server.port, STEP);
        let waited = t0.elapsed();
        assert!(raw.info.contains("\"tls_required\":true"), "{}", raw.info);
        assert!(
            waited >= delay.mul_f32(0.8) && waited < delay + Duration::from_secs(2),
            "{setting}: INFO after {waited:?}"
        );
        // TLS-first clients and INFO-first clients both connect and talk to each other.
        let a = must_connect(certs.client(None).tls_first(), &server.url).await;
        let b = must_connect(certs.client(None), &server.url).await;
        exercise(&a, &b).await;
    }
}

#[tokio::test]
async fn allow_non_tls_serves_plaintext_and_tls_clients() {
    let certs = Certs::new();
    let conf = config_file(&certs, "");
    let text = std::fs::read_to_string(&conf).expect("read conf") + "allow_non_tls: true\n";
    certs.write("server.conf", &text);
    let server = start(&["-c".to_string(), conf]);
    assert!(
        server
            .log()
            .contains("TLS available for client connections"),
        "{}",
        server.log()
    );
    let mut raw = RawConn::connect(server.port, STEP);
    assert!(raw.info.contains("\"tls_available\":true"), "{}", raw.info);
    assert!(!raw.info.contains("tls_required"), "{}", raw.info);
    // A plaintext client's first bytes are protocol, not a handshake: it is served.
    raw.send(b"CONNECT {\"verbose\":false}\r\nSUB plain 1\r\nPUB plain 2\r\nhi\r\nPING\r\n");
    let got = raw.read_until(b"PONG\r\n", STEP);
    assert!(
        got.text().contains("MSG plain 1 2\r\nhi\r\n"),
        "{}",
        got.text()
    );
    // A TLS client and a plaintext async-nats client reach each other.
    let a = must_connect(certs.client(None), &server.url).await;
    let b = must_connect(ConnectOptions::new(), &server.url).await;
    exercise(&a, &b).await;
    exercise(&b, &a).await;
}

#[tokio::test]
async fn verify_and_timeout_from_the_config_file() {
    let certs = Certs::new();
    let conf = config_file(&certs, "  verify: true\n  timeout: 0.5");
    let server = start(&["-c".to_string(), conf]);
    let mut raw = RawConn::connect(server.port, STEP);
    assert!(raw.info.contains("\"tls_verify\":true"), "{}", raw.info);
    let t0 = Instant::now();
    assert!(raw.read_to_close(STEP).closed);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_millis(3000),
        "closed after {waited:?}, configured timeout is 0.5s"
    );
    let a = must_connect(certs.client(Some("alice")), &server.url).await;
    a.flush().await.expect("flush");
    assert!(connect(certs.client(None), &server.url).await.is_err());
}

#[test]
fn missing_key_flag_fails_like_nats_server() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["-p", "-1", "--tlscert", "x.pem"])
        .output()
        .expect("run tachyon");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TLS Server private key must be present and valid"),
        "{text}"
    );
}

#[test]
fn unreadable_certificate_is_a_fatal_start_error() {
    let dir = TempDir::new("tls-bad");
    let cert = dir.0.join("cert.pem");
    std::fs::write(&cert, "not a certificate").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tachyon"))
        .args(["-a", "127.0.0.1", "-p", "-1", "--tls", "--tlscert"])
        .arg(&cert)
        .arg("--tlskey")
        .arg(&cert)
        .output()
        .expect("run tachyon");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[FTL]"), "{text}");
    assert!(text.contains("cert.pem"), "names the file: {text}");
}

/// nats-py (the Python client) over mutual TLS: pub/sub with 100 KB payloads and request/reply.
#[test]
fn nats_py_over_mutual_tls() {
    let py = match std::env::var_os("TACHYON_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
    };
    if !py.is_file() {
        if std::env::var("TACHYON_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("SKIP nats_py_over_mutual_tls: no venv python (run scripts/setup.sh)");
            return;
        }
        panic!("no python with nats-py at {py:?}: run scripts/setup.sh or set TACHYON_PYTHON");
    }
    let certs = Certs::new();
    let server = start(&certs.server_args(true));
    let url = server.url.replacen("nats://", "tls://", 1);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/tls_smoke.py");
    // `oldie` holds an X.509 v1 certificate from the CA: OpenSSL (so nats-py) presents it and
    // Go's TLS stack accepts it; webpki alone refused it (the Rust client cannot even load it).
    // `forged` is the same name and key under another CA's key with the same CA name.
    for (client, admitted) in [("alice", true), ("oldie", true), ("forged", false)] {
        let out = std::process::Command::new(&py)
            .arg(&script)
            .arg(&url)
            .arg(certs.path("ca.pem"))
            .arg(certs.path(&format!("{client}.pem")))
            .arg(certs.path(&format!("{client}-key.pem")))
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => panic!("run {py:?}: {e}"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let passed = out.status.success() && stdout.contains("tls smoke: all passed");
        assert_eq!(
            passed,
            admitted,
            "tls_smoke.py as {client} ({}):\n{stdout}\n{stderr}\n--- server log\n{}",
            out.status,
            server.log()
        );
    }
}
