//! SIGHUP re-checks the connections already open, as nats-server's `reloadAuthorization` does:
//! a removed (or moved) user is closed, a changed password is an `Authorization Violation`,
//! narrowed permissions apply at once and revoke the subscriptions they forbid, and a reload
//! that changes nothing disturbs nobody. Four shards, so clients and publishers spread.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server, TempDir};

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("write {path:?}: {e}");
    }
}

/// Connects as `user`/`pass` and waits for the PONG of its first PING.
fn login(s: &Server, user: &str, pass: &str) -> RawConn {
    let mut c = RawConn::connect(s.port, STEP);
    c.send(
        format!(
            "CONNECT {{\"verbose\":false,\"protocol\":1,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\nPING\r\n"
        )
        .as_bytes(),
    );
    let got = c.read_until(b"PONG\r\n", STEP).text();
    assert!(got.ends_with("PONG\r\n"), "{user}: {got:?}\n{}", s.log());
    // protocol 1: the INFO that follows the first PONG.
    let info = c.read_until(b"\r\n", STEP).text();
    assert!(info.starts_with("INFO "), "{info:?}");
    c
}

/// Sends `ops` and a PING; returns everything up to the PONG.
fn exchange(c: &mut RawConn, ops: &str) -> String {
    c.send(format!("{ops}PING\r\n").as_bytes());
    c.read_until(b"PONG\r\n", STEP).text()
}

/// Rewrites the config, sends SIGHUP and waits for the reload to be reported (which happens
/// only once every shard re-checked its clients).
fn reload(s: &Server, conf: &Path, text: &str) {
    let before = s.log().matches("Reloaded server configuration").count();
    write(conf, text);
    // SAFETY: kill has no memory effects; the pid is our own child, still unreaped.
    let rc = unsafe { libc::kill(s.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + STEP;
    while s.log().matches("Reloaded server configuration").count() == before {
        assert!(
            Instant::now() < deadline,
            "no reload reported:\n{}",
            s.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn start(tag: &str, text: &str) -> (TempDir, std::path::PathBuf, Server) {
    let dir = TempDir::new(tag);
    let conf = dir.0.join("r.conf");
    write(&conf, text);
    let conf_s = conf.to_string_lossy().into_owned();
    let s = Server::tachyon(SHARDS, &["-c", &conf_s]);
    (dir, conf, s)
}

fn users(list: &str) -> String {
    format!("authorization {{ users = [ {list} ] }}\n")
}

#[test]
fn removed_user_is_closed_and_changed_password_is_an_authorization_violation() {
    let before =
        users("{user: alice, password: a}, {user: bob, password: b}, {user: carol, password: c}");
    let (_dir, conf, s) = start("reload-users", &before);
    let mut alice = login(&s, "alice", "a");
    let mut bob = login(&s, "bob", "b");
    let mut carol = login(&s, "carol", "c");
    assert_eq!(exchange(&mut alice, "SUB news 1\r\n"), "PONG\r\n");

    reload(
        &s,
        &conf,
        &users("{user: alice, password: a}, {user: carol, password: c2}"),
    );

    // nats-server closes a client whose user is gone without a word (it counts as moved).
    let got = bob.read_to_close(STEP);
    assert!(got.closed, "bob still open: {:?}", got.text());
    assert!(!got.text().contains("-ERR"), "{:?}", got.text());
    let got = carol.read_to_close(STEP);
    assert!(got.closed, "carol still open: {:?}", got.text());
    assert_eq!(got.text(), "-ERR 'Authorization Violation'\r\n");

    // Alice is untouched: her subscription still gets what a new client publishes.
    let mut fresh = login(&s, "carol", "c2");
    assert_eq!(exchange(&mut fresh, "PUB news 2\r\nhi\r\n"), "PONG\r\n");
    let got = alice.read_until(b"hi\r\n", STEP).text();
    assert_eq!(got, "MSG news 1 2\r\nhi\r\n");
    assert_eq!(exchange(&mut alice, ""), "PONG\r\n");
}

#[test]
fn narrowed_permissions_apply_to_open_connections() {
    let before = users("{user: pub, password: p}, {user: bob, password: b}");
    let (_dir, conf, s) = start("reload-perms", &before);
    let mut publisher = login(&s, "pub", "p");
    let mut bob = login(&s, "bob", "b");
    assert_eq!(
        exchange(&mut bob, "SUB foo 1\r\nSUB bar q 2\r\nSUB baz.* 3\r\n"),
        "PONG\r\n"
    );
    // Before the reload bob may publish anywhere and receives all three.
    assert_eq!(
        exchange(
            &mut publisher,
            "PUB foo 1\r\nf\r\nPUB baz.secret 1\r\ns\r\n"
        ),
        "PONG\r\n"
    );
    let got = bob.read_until(b"s\r\n", STEP).text();
    assert_eq!(got, "MSG foo 1 1\r\nf\r\nMSG baz.secret 3 1\r\ns\r\n");

    let perms = "permissions: { publish: bar, subscribe: { deny: [foo, baz.secret] } }";
    reload(
        &s,
        &conf,
        &users(&format!(
            "{{user: pub, password: p}}, {{user: bob, password: b, {perms}}}"
        )),
    );

    // The forbidden subscription is revoked, in nats-server's words; the connection stays.
    let got = exchange(&mut bob, "PUB foo 1\r\nx\r\n");
    assert_eq!(
        got,
        "-ERR 'Permissions Violation for Subscription to \"foo\" (sid \"1\")'\r\n\
         -ERR 'Permissions Violation for Publish to \"foo\"'\r\nPONG\r\n"
    );
    assert_eq!(
        exchange(&mut bob, "PUB bar 1\r\ny\r\n"),
        "MSG bar 2 1\r\ny\r\n\
PONG\r\n"
    );

    // foo no longer reaches bob, and baz.* is now filtered by the new deny list.
    assert_eq!(
        exchange(
            &mut publisher,
            "PUB foo 1\r\n1\r\nPUB baz.secret 1\r\n2\r\nPUB baz.ok 1\r\n3\r\nPUB bar 1\r\n4\r\n"
        ),
        "PONG\r\n"
    );
    let got = bob.read_until(b"4\r\n", STEP).text();
    assert_eq!(got, "MSG baz.ok 3 1\r\n3\r\nMSG bar 2 1\r\n4\r\n");
    assert_eq!(exchange(&mut bob, ""), "PONG\r\n");
}

#[test]
fn a_user_moved_to_another_account_is_closed() {
    let conf_text = |a: &str, b: &str| {
        format!("accounts {{ A {{ users = [ {a} ] }}, B {{ users = [ {b} ] }} }}\n")
    };
    let alice = "{user: alice, password: a}";
    let bob = "{user: bob, password: b}";
    let (_dir, conf, s) = start("reload-move", &conf_text(alice, bob));
    let mut a = login(&s, "alice", "a");
    let mut b = login(&s, "bob", "b");
    reload(&s, &conf, &conf_text("", &format!("{alice}, {bob}")));
    let got = a.read_to_close(STEP);
    assert!(got.closed, "alice still open: {:?}", got.text());
    assert!(!got.text().contains("-ERR"), "{:?}", got.text());
    assert_eq!(exchange(&mut b, ""), "PONG\r\n");
    // She comes back in B and shares its subject space with bob.
    let mut a = login(&s, "alice", "a");
    assert_eq!(exchange(&mut b, "SUB room 1\r\n"), "PONG\r\n");
    assert_eq!(exchange(&mut a, "PUB room 2\r\nhi\r\n"), "PONG\r\n");
    assert_eq!(
        b.read_until(b"hi\r\n", STEP).text(),
        "MSG room 1 2\r\nhi\r\n"
    );
}

#[test]
fn a_reload_that_changes_nothing_keeps_every_connection_and_subscription() {
    let text = users(
        "{user: alice, password: a, permissions: { publish: \"x.>\", subscribe: \"x.>\" }}, \
         {user: bob, password: b}",
    );
    let (_dir, conf, s) = start("reload-same", &text);
    let mut alice = login(&s, "alice", "a");
    let mut bobs: Vec<RawConn> = (0..4).map(|_| login(&s, "bob", "b")).collect();
    assert_eq!(
        exchange(&mut alice, "SUB x.* 1\r\nSUB x.> q 2\r\n"),
        "PONG\r\n"
    );
    for (i, b) in bobs.iter_mut().enumerate() {
        assert_eq!(exchange(b, &format!("SUB x.{i} 9\r\n")), "PONG\r\n");
    }

    reload(&s, &conf, &text);

    // Her own plain and queue subscriptions both get her message (local delivery, before PONG).
    let got = exchange(&mut alice, "PUB x.1 2\r\nhi\r\n");
    assert!(got.contains("MSG x.1 1 2\r\nhi\r\n"), "{got:?}");
    assert!(got.contains("MSG x.1 2 2\r\nhi\r\n"), "{got:?}");
    assert!(
        got.ends_with("PONG\r\n") && !got.contains("-ERR"),
        "{got:?}"
    );
    // Her permissions still hold.
    assert_eq!(
        exchange(&mut alice, "PUB y 0\r\n\r\n"),
        "-ERR 'Permissions Violation for Publish to \"y\"'\r\nPONG\r\n"
    );
    assert_eq!(
        bobs[1].read_until(b"hi\r\n", STEP).text(),
        "MSG x.1 9 2\r\nhi\r\n"
    );
    for (i, b) in bobs.iter_mut().enumerate() {
        assert_eq!(
            exchange(b, &format!("PUB x.{i} 1\r\n{i}\r\n")),
            format!("MSG x.{i} 9 1\r\n{i}\r\nPONG\r\n")
        );
    }
}
