//! Permission checks on the message path allocate nothing once warm: a publish check is a hit in
//! the connection's cache, a delivery-time deny check too, and a subscription's queue entries are
//! matched without building anything.

mod alloc_counter;

use alloc_counter::{allocations, CountingAllocator};
use std::sync::Arc;

use tachyon_core::auth::perms::CompiledPerms;
use tachyon_core::auth::{PermChecker, Permissions, SubjectPermission};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn list(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn warm_checks_do_not_allocate() {
    let perms = Permissions {
        publish: Some(SubjectPermission {
            allow: Some(list(&["orders.>", "metrics.*"])),
            deny: list(&["orders.internal.>"]),
        }),
        subscribe: Some(SubjectPermission {
            allow: Some(list(&["orders.>", "work.* pool"])),
            deny: list(&["orders.secret", "work.* badpool"]),
        }),
        response: None,
    };
    let mut c = PermChecker::new(Arc::new(CompiledPerms::compile(&perms)));
    let subjects: [&[u8]; 4] = [
        b"orders.new",
        b"metrics.cpu",
        b"orders.internal.x",
        b"other",
    ];
    let expect = [true, true, false, false];
    // Warm up the caches.
    for s in subjects {
        c.can_publish(s);
        c.delivery_denied(s, None);
    }
    c.delivery_denied(b"work.a", Some(b"pool"));
    c.delivery_denied(b"orders.secret", None);

    let before = allocations();
    for _ in 0..10_000 {
        for (s, want) in subjects.iter().zip(expect) {
            assert_eq!(c.can_publish(s), want);
        }
        assert!(c.delivery_denied(b"orders.secret", None));
        assert!(!c.delivery_denied(b"orders.new", None));
        assert!(!c.delivery_denied(b"work.a", Some(b"pool")));
        assert!(c.can_subscribe(b"work.a", Some(b"pool")));
        assert!(!c.can_subscribe(b"work.a", Some(b"badpool")));
    }
    assert_eq!(
        allocations() - before,
        0,
        "warm permission checks allocated"
    );
}
