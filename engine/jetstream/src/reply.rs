//! The replies the runtime sends, built from the registry and the streams through `api`'s
//! nats-server-shaped types.

use tachyon_core::accounts::AccountId;
use tachyon_storage::StoredMsg;

use crate::api::{self, ApiKind, ApiPaged, StreamInfo, StreamInfoRequest, StreamState};
pub(crate) use crate::api::{pub_ack, pub_ack_error};
use crate::errors::ApiError;
use crate::registry::StreamEntry;
use crate::stream::StreamTask;
use crate::{now_nanos, JetStream};

pub(crate) fn error(kind: ApiKind, e: &ApiError) -> Vec<u8> {
    api::error_response(kind, e)
}

/// A stream's info shaped as nats-server's standalone replies shape it: CREATE carries the
/// dynamic metadata but neither domain nor cluster; UPDATE adds the domain; INFO adds the
/// cluster (its leader) too; LIST has the domain and only the stored metadata.
fn info(js: &JetStream, e: &StreamEntry, state: StreamState, kind: ApiKind) -> StreamInfo {
    let config = if kind == ApiKind::StreamList {
        e.config.clone()
    } else {
        e.config
            .with_dynamic_metadata(&js.settings.version, crate::API_LEVEL)
    };
    let mut i = StreamInfo::new(config, e.created, state, now_nanos());
    if kind != ApiKind::StreamCreate {
        if let Some(d) = &js.settings.domain {
            i.domain = d.clone();
        }
    }
    if kind == ApiKind::StreamInfo {
        i.cluster = Some(api::ClusterInfo::single(&js.settings.server_name));
    }
    i
}

/// STREAM.INFO / CREATE / UPDATE of a stream this shard owns (subject details need its store).
/// nats-server's standalone create says `did_create` also when the very same stream existed.
pub(crate) fn stream_info(t: &StreamTask, kind: ApiKind, req: &StreamInfoRequest) -> Vec<u8> {
    let entry = t.entry();
    let mut state = api::StreamState::from_store(&t.figures(), t.consumer_count());
    if req.deleted_details {
        state.deleted = t.deleted_seqs();
    }
    let mut page = ApiPaged::default();
    if !req.subjects_filter.is_empty() {
        // As nats-server: the page is set only when some subject matched; past the end the
        // subjects are left out.
        let counts = t.subject_counts(&req.subjects_filter);
        if !counts.is_empty() {
            // The offset is echoed as asked, even past the end.
            page = ApiPaged {
                total: counts.len(),
                offset: req.offset,
                limit: api::MAX_SUBJECT_DETAILS,
            };
            let start = req.offset.min(counts.len());
            state.subjects = counts
                .into_iter()
                .skip(start)
                .take(api::MAX_SUBJECT_DETAILS)
                .collect();
        }
    }
    let i = info(&t.js, &entry, state, kind);
    match kind {
        ApiKind::StreamCreate => api::stream_create_response(&i, true),
        ApiKind::StreamUpdate => api::stream_update_response(&i),
        _ => api::stream_info_response(&i, page),
    }
}

/// A create of a stream that exists with the very same config: its info, from the registry.
pub(crate) fn stream_info_of_entry(js: &JetStream, e: &StreamEntry) -> Vec<u8> {
    let i = info(
        js,
        e,
        api::StreamState::from_store(&e.figures.load(), e.figures.consumer_count()),
        ApiKind::StreamCreate,
    );
    api::stream_create_response(&i, true)
}

/// `$JS.API.INFO`: usage summed over the account's streams.
pub(crate) fn account_info(js: &JetStream, account: AccountId) -> Vec<u8> {
    let (mut memory, mut storage, mut streams, mut consumers) = (0u64, 0u64, 0usize, 0usize);
    // nats-server reserves each stream's max_bytes, when it has one.
    let (mut reserved_memory, mut reserved_storage) = (0u64, 0u64);
    if let Some(acc) = js.registry.lock().get(&account) {
        for s in acc.streams.values().filter(|s| s.ready) {
            streams += 1;
            consumers += s.figures.consumer_count();
            let bytes = s.figures.load().bytes;
            let reserve = u64::try_from(s.config.max_bytes).unwrap_or(0);
            if s.config.is_memory() {
                memory += bytes;
                reserved_memory += reserve;
            } else {
                storage += bytes;
                reserved_storage += reserve;
            }
        }
    }
    let (total, errors) = js.registry.api(account).map_or((0, 0), |c| {
        (
            c.total.load(std::sync::atomic::Ordering::Relaxed),
            c.errors.load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    let info = api::AccountInfo {
        memory,
        storage,
        reserved_memory,
        reserved_storage,
        streams,
        consumers,
        domain: js.settings.domain.clone().unwrap_or_default(),
        limits: js.limits_of(account).cloned().unwrap_or_default(),
        api: api::ApiStats {
            level: crate::API_LEVEL,
            total,
            errors,
            inflight: 0,
        },
        ..api::AccountInfo::default()
    };
    api::account_info_response(&info)
}

/// The account's ready streams, by name, that have a subject matching `filter` ("" = all).
fn listed(js: &JetStream, account: AccountId, filter: &str) -> Vec<StreamEntry> {
    let reg = js.registry.lock();
    let Some(acc) = reg.get(&account) else {
        return Vec::new();
    };
    acc.streams
        .values()
        .filter(|s| s.ready)
        .filter(|s| {
            filter.is_empty()
                || s.config
                    .subjects
                    .iter()
                    .any(|subj| crate::config::subjects_overlap(subj, filter))
        })
        .cloned()
        .collect()
}

pub(crate) fn stream_names(
    js: &JetStream,
    account: AccountId,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let req = api::parse_stream_names_request(body, js.settings.strict)?;
    let all = listed(js, account, &req.subject);
    let (page, range) = ApiPaged::page(all.len(), req.offset as i64, api::NAMES_LIMIT);
    let names: Vec<String> = all[range].iter().map(|s| s.config.name.clone()).collect();
    Ok(api::stream_names_response(&names, page))
}

pub(crate) fn stream_list(
    js: &JetStream,
    account: AccountId,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let req = api::parse_stream_list_request(body, js.settings.strict)?;
    let all = listed(js, account, &req.subject);
    let (page, range) = ApiPaged::page(all.len(), req.offset as i64, api::LIST_LIMIT);
    let infos: Vec<StreamInfo> = all[range]
        .iter()
        .map(|e| {
            info(
                js,
                e,
                api::StreamState::from_store(&e.figures.load(), e.figures.consumer_count()),
                ApiKind::StreamList,
            )
        })
        .collect();
    Ok(api::stream_list_response(&infos, page, &[]))
}

/// The headers of a direct get reply: the message's own (if any) with Nats-Stream,
/// Nats-Subject, Nats-Sequence and Nats-Time-Stamp added, as nats-server builds them.
pub(crate) fn direct_headers(stream: &str, m: &StoredMsg) -> Vec<u8> {
    let ts = api::rfc3339_nano(m.timestamp);
    let fields = format!(
        "Nats-Stream: {stream}\r\nNats-Subject: {}\r\nNats-Sequence: {}\r\nNats-Time-Stamp: {ts}\r\n",
        m.subject, m.seq
    );
    let own = m.headers.as_slice();
    if own.is_empty() {
        return format!("NATS/1.0\r\n{fields}\r\n").into_bytes();
    }
    // The message's block minus its closing blank line, then ours, then the blank line.
    let body = own.strip_suffix(b"\r\n").unwrap_or(own);
    let mut out = Vec::with_capacity(body.len() + fields.len() + 2);
    out.extend_from_slice(body);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(fields.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// Answers an API request with `r` (the reply, or the error as `kind`'s reply) and counts it.
pub(crate) fn answer(
    out: &tachyon_core::service::InternalClient,
    counters: Option<&crate::registry::ApiCounters>,
    to: &Option<bytes::Bytes>,
    kind: ApiKind,
    r: Result<Vec<u8>, ApiError>,
) {
    if let Some(c) = counters {
        c.count(r.is_err());
    }
    let body = match r {
        Ok(body) => body,
        Err(e) => error(kind, &e),
    };
    if let Some(to) = to {
        out.publish(to, None, None, &body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &[u8]) -> StoredMsg {
        StoredMsg {
            seq: 5,
            timestamp: 1_700_000_000_123_456_789,
            subject: "a.b".into(),
            headers: headers.to_vec(),
            payload: b"x".to_vec(),
        }
    }

    #[test]
    fn direct_get_headers_are_added_to_the_message_own() {
        let h = direct_headers("S", &msg(b""));
        assert_eq!(
            String::from_utf8_lossy(&h),
            "NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: a.b\r\nNats-Sequence: 5\r\n\
             Nats-Time-Stamp: 2023-11-14T22:13:20.123456789Z\r\n\r\n"
        );
        let h = direct_headers("S", &msg(b"NATS/1.0\r\nK: v\r\n\r\n"));
        let text = String::from_utf8_lossy(&h);
        assert!(
            text.starts_with("NATS/1.0\r\nK: v\r\nNats-Stream: S\r\n"),
            "{text}"
        );
        assert!(text.ends_with("Z\r\n\r\n"), "{text}");
        assert!(tachyon_protocol::headers::parse(&h).is_ok());
    }
}
