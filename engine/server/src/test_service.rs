//! Debug builds only: an echo service on the internal-client API, for the integration tests
//! (`tests/services.rs`) to prove that services work like clients from every shard and across
//! accounts. `TACHYON_TEST_ECHO_SERVICE=ACCOUNT:SUBJECT:SHARD` runs it in ACCOUNT (`$G` for
//! the global one) on shard SHARD:
//! - a request on SUBJECT is answered with `shard N: ` and the request's payload, and its
//!   headers echoed back;
//! - SUBJECT with `.once` appended to its first token's place (`once.SUBJECT`) is answered once,
//!   then its subscription ends (auto-unsubscribe after one message).

use std::rc::Rc;

use bytes::Bytes;
use tachyon_core::service::InternalClient;
use tachyon_core::shard::tasks::ShardParts;
use tachyon_core::shard::Shard;

pub fn install(parts: &mut [ShardParts]) {
    let Ok(spec) = std::env::var("TACHYON_TEST_ECHO_SERVICE") else {
        return;
    };
    let fields: Vec<String> = spec.split(':').map(str::to_string).collect();
    let [account, subject, shard] = fields.as_slice() else {
        panic!("TACHYON_TEST_ECHO_SERVICE={spec}: want ACCOUNT:SUBJECT:SHARD");
    };
    let Some(part) = shard.parse::<usize>().ok().and_then(|i| parts.get_mut(i)) else {
        panic!("TACHYON_TEST_ECHO_SERVICE={spec}: no such shard");
    };
    let (account, subject) = (account.clone(), subject.clone());
    part.on_start.push(Box::new(move |shard: Rc<Shard>| {
        Box::pin(async move {
            let id = match shard.global.accounts.id(&account) {
                Some(id) => id,
                None if account == "$G" => tachyon_core::accounts::GLOBAL,
                None => panic!("TACHYON_TEST_ECHO_SERVICE: no account {account}"),
            };
            let mut svc = InternalClient::new(&shard, id);
            let echo = svc.subscribe(&subject, None).expect("subscribe");
            let once = svc
                .subscribe(&format!("once.{subject}"), None)
                .expect("subscribe");
            svc.unsubscribe(&once, Some(1));
            svc.barrier().await;
            glommio::spawn_local(async move {
                while let Some(m) = svc.next().await {
                    let Some(reply) = m.reply else { continue };
                    let body = if m.sid == echo {
                        let mut b = format!("shard {}: ", shard.id).into_bytes();
                        b.extend_from_slice(&m.payload);
                        b
                    } else {
                        b"once".to_vec()
                    };
                    svc.publish(&reply, None::<&Bytes>, m.headers.as_deref(), &body);
                }
            })
            .detach();
        })
    }));
}
