//! `/containers/{id}/archive`: what `docker cp` uses both ways. HEAD stats a path, GET
//! sends it as a tar, PUT extracts a tar into a directory; the client does the renaming
//! (Docker's split). Paths are resolved inside the container's root (or the mount's
//! source) by the engine, as for `hako cp`.

use std::ffi::OsString;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State as St};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hako_engine::archive::PathStat;

use crate::State;
use crate::body::{blocking, reader, stream};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

const STAT_HEADER: &str = "x-docker-container-path-stat";

/// The `path` parameter (required).
fn path_of(q: Option<&str>) -> ApiResult<String> {
    match Query::parse(q).get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad("bad parameter: path is required")),
    }
}

/// Docker resolves every symlink but a final one, unless the path ends in `/` or `/.`.
fn follows(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.") || path == "."
}

/// The name of the tar's top entry: the last component as written (`.` for `dir/.`),
/// which the client rebases to its destination.
fn top_name(path: &str) -> OsString {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some("") | None => OsString::from("."),
        Some(last) => OsString::from(last),
    }
}

/// The stat of `path`, or Docker's 404.
async fn stat(state: &State, id: &str, path: &str) -> ApiResult<PathStat> {
    let (id, path) = (id.to_string(), path.to_string());
    blocking(state, move |e| {
        e.path_stat(&id, &path, follows(&path))?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Could not find the file {path} in container {id}"),
            )
        })
    })
    .await
}

fn with_stat(mut r: Response, st: &PathStat) -> ApiResult<Response> {
    let json = serde_json::to_vec(&st.docker_json()).unwrap_or_default();
    let value = base64::engine::general_purpose::STANDARD.encode(json);
    r.headers_mut().insert(
        STAT_HEADER,
        HeaderValue::from_str(&value).map_err(|e| ApiError::bad(e.to_string()))?,
    );
    Ok(r)
}

/// `HEAD /containers/{id}/archive?path=`: the stat header only.
pub async fn head(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let path = path_of(q.as_deref())?;
    let st = stat(&state, &id, &path).await?;
    with_stat(StatusCode::OK.into_response(), &st)
}

/// `GET /containers/{id}/archive?path=`: the stat header and the path as a tar.
pub async fn get(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let path = path_of(q.as_deref())?;
    let st = stat(&state, &id, &path).await?;
    let (mut w, body) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let name = top_name(&path);
        // An error mid-stream ends the body early: the client's tar reader reports it.
        let res = if is_root(&path) {
            contents(&engine, &id, &path, b"/", &mut w)
        } else if name == "." {
            contents(&engine, &id, &path, b"./", &mut w)
        } else {
            engine
                .copy_out(&id, &path, follows(&path), Some(&name), &mut w)
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "archive of {path} in {id}");
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-tar"),
    );
    with_stat(r, &st)
}

/// The container's root (`/`, `//`): dockerd names its entries `/`, `/bin/`, `/etc/passwd`.
fn is_root(path: &str) -> bool {
    !path.is_empty() && path.bytes().all(|b| b == b'/')
}

/// A directory's contents, every entry named with `prefix`: `./...` for `dir/.` and
/// `/...` for `/`, as dockerd sends them (the client rebases the top entry to its
/// destination's name and needs the prefix to do it). The engine's tar (whose writer
/// normalises `./a` to `a`) is renamed entry by entry.
fn contents(
    engine: &hako_engine::Engine,
    id: &str,
    path: &str,
    prefix: &'static [u8],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let (r, mut wr) = std::io::pipe()?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let res = engine.copy_out(id, path, true, Some(std::ffi::OsStr::new(".")), &mut wr);
            drop(wr);
            res.map_err(|e| std::io::Error::other(e.to_string()))
        });
        let renamed = prefixed(r, prefix, out);
        let made = producer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the archive writer panicked")));
        made.and(renamed)
    })
}

/// Copies the tar `input` to `out` with `prefix` before every name (and hard link target).
fn prefixed(
    input: impl std::io::Read,
    prefix: &[u8],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut a = tar::Archive::new(input);
    let mut b = tar::Builder::new(out);
    for e in a.entries()? {
        let mut e = e?;
        let mut h = e.header().clone();
        let name = with_prefix(prefix, &e.path_bytes(), h.entry_type().is_dir());
        if h.entry_type().is_hard_link()
            && let Some(l) = e.link_name_bytes()
        {
            let l = with_prefix(prefix, &l, false);
            set_raw(&mut b, &mut h, &l, true)?;
        }
        set_raw(&mut b, &mut h, &name, false)?;
        h.set_cksum();
        b.append(&h, &mut e)?;
    }
    b.into_inner()?.flush()
}

/// With `./`: `a` → `./a`, `.` → `./`; with `/`: `a` → `/a`, `.` → `/` (a directory
/// gets a trailing `/`, as Go's tar writes it).
fn with_prefix(prefix: &[u8], name: &[u8], dir: bool) -> Vec<u8> {
    let trimmed: &[u8] = match name {
        b"." | b"./" => b"",
        n => n.strip_prefix(b"./").unwrap_or(n),
    };
    let mut v = prefix.to_vec();
    v.extend_from_slice(trimmed);
    if dir && !v.ends_with(b"/") {
        v.push(b'/');
    }
    v
}

/// Puts `name` in the header as it is (no normalisation); over 100 bytes through a GNU
/// long-name (or long-link) entry first, as tar-rs and GNU tar do.
fn set_raw(
    b: &mut tar::Builder<&mut dyn std::io::Write>,
    h: &mut tar::Header,
    name: &[u8],
    link: bool,
) -> std::io::Result<()> {
    let old = h.as_old_mut();
    let field: &mut [u8] = if link {
        &mut old.linkname
    } else {
        &mut old.name
    };
    field.fill(0);
    if name.len() > field.len() {
        let mut long = tar::Header::new_gnu();
        let tag: &[u8] = b"././@LongLink";
        long.as_old_mut().name[..tag.len()].copy_from_slice(tag);
        long.set_mode(0o644);
        long.set_entry_type(if link {
            tar::EntryType::GNULongLink
        } else {
            tar::EntryType::GNULongName
        });
        let mut data = name.to_vec();
        data.push(0);
        long.set_size(data.len() as u64);
        long.set_cksum();
        b.append(&long, &data[..])?;
    }
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
    Ok(())
}

/// `PUT /containers/{id}/archive?path=DIR&copyUIDGID=&noOverwriteDirNonDir=`: extracts
/// the tar body into the existing directory `DIR` (owned by root unless `copyUIDGID`; with
/// `noOverwriteDirNonDir` a directory of the tar does not replace a file: 400).
pub async fn put(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let path = path_of(q.as_deref())?;
    let query = Query::parse(q.as_deref());
    let keep_owner = query.bool("copyUIDGID", false);
    let strict = query.bool("noOverwriteDirNonDir", false);
    stat(&state, &id, &path).await?;
    let mut input = reader(body);
    blocking(&state, move |e| {
        Ok(e.copy_in(&id, &path, &mut input, keep_owner, strict)?)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_following_as_docker() {
        assert_eq!(top_name("/etc/hostname"), "hostname");
        assert_eq!(top_name("/etc/"), "etc");
        assert_eq!(top_name("/etc/."), ".");
        assert_eq!(top_name("/"), ".");
        assert_eq!(top_name("rel"), "rel");
        assert!(!follows("/link"));
        assert!(follows("/link/"));
        assert!(follows("/dir/."));
    }

    #[test]
    fn contents_get_prefixed_names_long_ones_too() {
        let long = format!("{}/f", "d".repeat(150));
        let mut src = tar::Builder::new(Vec::new());
        for (name, dir) in [(".", true), ("a", false), (long.as_str(), false)] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_size(if dir { 0 } else { 1 });
            h.set_mode(0o644);
            let data: &[u8] = if dir { b"" } else { b"x" };
            src.append_data(&mut h, name, data).unwrap();
        }
        let src = src.into_inner().unwrap();
        for prefix in ["./", "/"] {
            let mut out = Vec::new();
            prefixed(&src[..], prefix.as_bytes(), &mut out).unwrap();
            let mut a = tar::Archive::new(&out[..]);
            let names: Vec<Vec<u8>> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path_bytes().into_owned())
                .collect();
            assert_eq!(
                names,
                [
                    prefix.as_bytes().to_vec(),
                    format!("{prefix}a").into_bytes(),
                    format!("{prefix}{long}").into_bytes()
                ]
            );
        }
        assert!(is_root("/") && is_root("//"));
        assert!(!is_root("") && !is_root("/.") && !is_root("/etc"));
    }
}
