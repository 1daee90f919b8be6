//! `api_request`: what a client of `hako serve` sends, read by the public parsers the
//! handlers of hako-api call (its request body types are private to it; they are serde over
//! the same `hako_engine::models`): the create body (`ContainerConfig` with `HostConfig` and
//! `NetworkingConfig` beside it) and the mounts the engine resolves from it, network and
//! exec bodies, the `filters` query parameter, `since`/`until`, detach keys and the attach
//! stream they scan, stdcopy frames, and `hako serve -H`.
//!
//! Invariants: no panic, no hang; a container and host config that parse are stored by the
//! engine as JSON and read back (records.rs, which falls back to the default on a failed
//! read): written back they parse to the same config; resolved mounts have absolute
//! destinations and none twice; filters written back as JSON parse to the same filters;
//! detach keys are never empty and the scanner gives the same result fed whole or byte by
//! byte, forwarding the input as it came (minus the sequence, or a partial match held back
//! at the end); a frame read is written back to the same bytes; a listen address prints as
//! one that parses to the same.
//!
//! Input: the body; for the string parsers, its text (split at the first NUL into the detach
//! keys and the keystrokes).

use std::collections::{BTreeMap, HashSet};

use hako_api::Listen;
use hako_engine::filters::Filters;
use hako_engine::models::{
    ContainerConfig, HostConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
};
use hako_engine::stream::{DetachScanner, parse_detach_keys, read_frame, write_frame};
use hako_engine::{CONTAINER_FILTERS, IMAGE_FILTERS, NETWORK_FILTERS, VOLUME_FILTERS, mounts};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn api_request(data: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        create_body(&body);
        round_trip::<NetworkCreateRequest>(&body, "network create body");
        round_trip::<NetworkConnectRequest>(&body, "network connect body");
    }
    frames(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    filters(text);
    let _ = hako_engine::events::parse_time(text);
    listen(text);
    let (keys, typed) = text.split_once('\0').unwrap_or((text, "abc"));
    detach(keys, typed.as_bytes());
}

/// `POST /containers/create`: the config at the top level, `HostConfig` and
/// `NetworkingConfig` beside it; then the mounts `Engine::create` resolves first.
fn create_body(body: &Value) {
    round_trip::<ContainerConfig>(body, "container config");
    round_trip::<NetworkingConfig>(
        body.get("NetworkingConfig").unwrap_or(&Value::Null),
        "networking config",
    );
    let Some(host) = round_trip::<HostConfig>(
        body.get("HostConfig").unwrap_or(&Value::Null),
        "host config",
    ) else {
        return;
    };
    for b in host.binds.iter().flatten() {
        if let Ok(m) = mounts::parse_bind(b) {
            assert!(
                m.destination.starts_with('/'),
                "bind {b:?} resolved to a relative destination {:?}",
                m.destination
            );
        }
    }
    match mounts::from_host_config(&host) {
        Ok(ms) => {
            let mut seen = HashSet::new();
            for m in &ms {
                assert!(
                    m.destination.starts_with('/'),
                    "a mount resolved to a relative destination {:?}",
                    m.destination
                );
                assert!(
                    seen.insert(m.destination.trim_end_matches('/')),
                    "two mounts on {:?} resolved (Docker refuses duplicates)",
                    m.destination
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Some(name) = body.get("Name").and_then(Value::as_str) {
        let _ = mounts::check_volume_name(name);
    }
}

/// Reads `v` as a `T`; what parses must parse again, to the same, once written back.
fn round_trip<T: DeserializeOwned + Serialize>(v: &Value, what: &str) -> Option<T> {
    let t: T = serde_json::from_value(v.clone()).ok()?;
    let text =
        serde_json::to_string(&t).unwrap_or_else(|e| panic!("a {what} does not serialize: {e}"));
    let again: T = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a {what}, written back, does not parse: {e}\n{text}"));
    let (a, b) = (
        serde_json::to_value(&t).expect("serializes to a value"),
        serde_json::to_value(&again).expect("serializes to a value"),
    );
    assert_eq!(a, b, "a {what}, written back, parses as another");
    Some(t)
}

/// The `filters` query parameter of every list and prune.
fn filters(text: &str) {
    let f = match Filters::from_json(text) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let map: BTreeMap<&str, &[String]> = f.iter().collect();
    let json = serde_json::to_string(&map).expect("filters serialize");
    let again = Filters::from_json(&json)
        .unwrap_or_else(|e| panic!("filters written back as {json} do not parse: {e}"));
    assert_eq!(again, f, "filters written back as {json} parse as others");
    for allowed in [
        CONTAINER_FILTERS,
        IMAGE_FILTERS,
        NETWORK_FILTERS,
        VOLUME_FILTERS,
    ] {
        let _ = f.validate(allowed);
    }
    for (k, vals) in f.iter() {
        let _ = f.bool(k);
        for v in vals {
            let _ = hako_engine::filters::glob(v, "web-1/a");
        }
    }
}

/// `--detach-keys` / `DetachKeys`, then keystrokes through the scanner.
fn detach(spec: &str, typed: &[u8]) {
    let Ok(keys) = parse_detach_keys(spec) else {
        return;
    };
    assert!(!keys.is_empty(), "detach keys {spec:?} parsed to nothing");
    let (whole, detached) = DetachScanner::new(keys.clone()).feed(typed);
    let mut s = DetachScanner::new(keys.clone());
    let (mut bytewise, mut bytewise_detached) = (Vec::new(), false);
    for b in typed {
        let (out, d) = s.feed(std::slice::from_ref(b));
        bytewise.extend(out);
        if d {
            bytewise_detached = true;
            break;
        }
    }
    assert_eq!(
        (&whole, detached),
        (&bytewise, bytewise_detached),
        "keys {keys:?}: fed whole and byte by byte differ"
    );
    if detached {
        let mut forwarded = whole.clone();
        forwarded.extend(&keys);
        assert!(
            typed.starts_with(&forwarded),
            "keys {keys:?}: forwarded {whole:?} before detaching from {typed:?}"
        );
    } else {
        assert!(
            typed.starts_with(&whole),
            "keys {keys:?}: forwarded {whole:?} for {typed:?}"
        );
        let held = &typed[whole.len()..];
        assert!(
            held.len() < keys.len() && keys.starts_with(held),
            "keys {keys:?}: held back {held:?} of {typed:?}"
        );
    }
}

/// stdcopy frames (attach and logs streams without a tty).
fn frames(data: &[u8]) {
    let mut r = data;
    let mut payload = Vec::new();
    let mut consumed = 0;
    while let Ok(Some(kind)) = read_frame(&mut r, &mut payload) {
        let mut back = Vec::new();
        write_frame(&mut back, kind, &payload).expect("write to a Vec");
        let end = data.len() - r.len();
        if payload.is_empty() {
            // write_frame writes nothing for an empty payload.
            assert!(back.is_empty());
        } else {
            // Bytes 1-3 of the header are padding that readers ignore (Docker's stdcopy
            // too) and writers zero.
            let mut read = data[consumed..end].to_vec();
            read[1..4].fill(0);
            assert_eq!(back[..], read[..], "a frame read, written back, differs");
        }
        consumed = end;
    }
}

/// `hako serve -H`.
fn listen(text: &str) {
    match Listen::parse(text) {
        Ok(Listen::Tcp(addr)) => match Listen::parse(&format!("tcp://{addr}")) {
            Ok(Listen::Tcp(again)) => assert_eq!(again, addr),
            other => panic!("tcp://{addr} (from {text:?}) parses as {other:?}"),
        },
        Ok(Listen::Unix(p)) => assert!(!p.as_os_str().is_empty() || text == "unix://"),
        Err(e) => assert!(!e.is_empty()),
    }
}
