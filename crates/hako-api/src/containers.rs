//! `/containers/...`: list, create, inspect, lifecycle, wait, logs, stats, top, changes,
//! export, prune (attach is in `hijack.rs`, exec in `exec.rs`).

use std::io::Write;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State as St};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hako_engine::logs::LogOptions;
use hako_engine::models::{ContainerConfig, HostConfig};
use hako_engine::stream::{STDERR, STDOUT, write_frame};
use hako_engine::{ContainerListOptions, CreateOptions, WaitCondition};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::State;
use crate::body::{ChannelWriter, blocking, json as json_body, stream};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::version::ApiVersion;

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /containers/json`.
pub async fn list(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let o = ContainerListOptions {
        all: q.bool("all", false),
        limit: q
            .int("limit")?
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0),
        size: q.bool("size", false),
        filters: q.filters()?,
    };
    let list = blocking(&state, move |e| Ok(e.containers(&o)?)).await?;
    Ok(Json(list).into_response())
}

/// Docker's create body: the container config with `HostConfig` and `NetworkingConfig`
/// beside its fields.
#[derive(Debug, Deserialize)]
struct CreateBody {
    #[serde(flatten)]
    config: ContainerConfig,
    #[serde(rename = "HostConfig", default)]
    host_config: Option<HostConfig>,
    #[serde(rename = "NetworkingConfig", default)]
    networking: Option<Value>,
}

/// How long a container created through the API stays mounted for its start.
const UNSTARTED_UNMOUNT: std::time::Duration = std::time::Duration::from_secs(2);

/// `POST /containers/create?name=`.
pub async fn create(
    St(state): St<State>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let b: CreateBody = json_body(&body)?;
    let name = q.get("name").filter(|n| !n.is_empty()).map(str::to_string);
    let host = b.host_config.unwrap_or_default();
    // EndpointsConfig: aliases, IPAMConfig, MacAddress per network (hako-net).
    let networking = b
        .networking
        .and_then(|v| serde_json::from_value::<hako_engine::models::NetworkingConfig>(v).ok());
    let rec = blocking(&state, move |e| {
        if let Some(rt) = host.runtime.as_deref().filter(|r| !r.is_empty())
            && (rt.contains('/') || !e.runtimes().contains_key(rt))
        {
            return Err(ApiError::bad(format!(
                "unknown or invalid runtime name: {rt} (configured: {})",
                e.runtimes().keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let rec = e.create_to_start(CreateOptions {
            name,
            config: b.config,
            host_config: host,
            rootfs: None,
            networking,
        })?;
        let ahead = e.prepare_begin(&rec);
        Ok((rec, ahead))
    })
    .await?;
    let (rec, ahead) = rec;
    // The start made ahead (hako-engine's prepare.rs) runs while the answer goes out and
    // the client sends its next requests.
    if ahead {
        let (engine, id) = (state.engine.clone(), rec.id.clone());
        tokio::task::spawn_blocking(move || engine.prepare_run(&id));
    }
    // Docker clients start what they create at once (`docker run`, compose's `up`): the
    // root filesystem stays mounted for that start, as `hako run` keeps it (an overlay's
    // unmount syncs the filesystem, and the start would mount it again). One still not
    // started a while later is unmounted, as `hako create` does at once.
    let (st, id) = (state.clone(), rec.id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(UNSTARTED_UNMOUNT).await;
        let _ = blocking(&st, move |e| {
            e.unmount_unstarted(&id);
            Ok(())
        })
        .await;
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": rec.id, "Warnings": []})),
    )
        .into_response())
}

/// `GET /containers/{id}/json`.
pub async fn inspect(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    let v = blocking(&state, move |e| Ok(e.inspect_json(&id)?)).await?;
    Ok(Json(v).into_response())
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let (force, volumes) = (q.bool("force", false), q.bool("v", false));
    blocking(&state, move |e| {
        e.rm(&id, force, volumes)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

fn active(e: &hako_engine::Engine, id: &str) -> ApiResult<bool> {
    let rec = e.get(id)?;
    Ok(e.live(&rec).status.is_active())
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs (one look at its state).
pub async fn start(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    let started = blocking(&state, move |e| match e.start_if_stopped(&id) {
        Ok((_, started)) => Ok(started),
        Err(err) => {
            // Docker removes an AutoRemove container that could not start (`run --rm`
            // waits for that removal); not one that is paused (a 409, as dockerd's).
            if !matches!(
                err,
                hako_engine::Error::IllegalTransition {
                    status: hako_engine::Status::Paused,
                    ..
                }
            ) && let Ok(rec) = e.get(&id)
                && rec.host_config.auto_remove == Some(true)
            {
                let _ = e.remove(&rec.id, true, true);
            }
            Err(err.into())
        }
    })
    .await?;
    Ok(if started {
        no_content()
    } else {
        StatusCode::NOT_MODIFIED.into_response()
    })
}

/// `POST /containers/{id}/stop?t=&signal=`: 204, or 304 when it is not running.
pub async fn stop(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let t = q.int("t")?.or(q.int("timeout")?);
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let stopped = blocking(&state, move |e| {
        if !active(e, &id)? {
            return Ok(false);
        }
        e.stop(&id, t, signal.as_deref())?;
        Ok(true)
    })
    .await?;
    Ok(if stopped {
        no_content()
    } else {
        StatusCode::NOT_MODIFIED.into_response()
    })
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGKILL")
        .to_string();
    blocking(&state, move |e| {
        e.kill(&id, &signal)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let t = Query::parse(q.as_deref()).int("t")?;
    blocking(&state, move |e| {
        e.restart(&id, t)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `POST /containers/{id}/pause`.
pub async fn pause(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    blocking(&state, move |e| {
        e.pause(&id)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    blocking(&state, move |e| {
        e.unpause(&id)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("name is required"))?
        .to_string();
    blocking(&state, move |e| {
        e.rename(&id, &name)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `POST /containers/{id}/wait?condition=`: the headers go out at once (the docker CLI
/// waits for them before it starts the container), the status when the condition holds.
pub async fn wait(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let cond: WaitCondition = q.get("condition").unwrap_or("").parse()?;
    let (mut w, body) = stream();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<ApiResult<()>>();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut waiter = match engine.waiter(&id, cond) {
            Ok(w) => {
                let _ = ready_tx.send(Ok(()));
                w.defer_removal()
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        loop {
            match waiter.poll(Duration::from_millis(500)) {
                Ok(Some(code)) => {
                    let _ = crate::body::line(&mut w, &json!({"StatusCode": code, "Error": null}));
                    // The answer is out (the body ends with `w`): the removal's rest now.
                    drop(w);
                    waiter.finish();
                    return;
                }
                Ok(None) if w.closed() => return,
                Ok(None) => {}
                Err(e) => {
                    let _ = crate::body::line(
                        &mut w,
                        &json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
                    );
                    return;
                }
            }
        }
    });
    ready_rx
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "wait failed"))??;
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    Ok(r)
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (rows, cols) = size(&Query::parse(q.as_deref()))?;
    blocking(&state, move |e| {
        let rec = e.get(&id)?;
        if !e.live(&rec).status.is_active() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("container {} is not running", &rec.id[..12]),
            ));
        }
        e.resize(&rec.id, rows, cols)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `h` and `w` of a resize.
pub fn size(q: &Query) -> ApiResult<(u16, u16)> {
    let get = |k: &str| -> ApiResult<u16> {
        q.int(k)?
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| ApiError::bad(format!("invalid value for {k}")))
    };
    Ok((get("h")?, get("w")?))
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let args: Vec<String> = q
        .get("ps_args")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let (titles, procs) = blocking(&state, move |e| Ok(e.top(&id, &args)?)).await?;
    Ok(Json(json!({"Titles": titles, "Processes": procs})).into_response())
}

/// `GET /containers/{id}/changes`.
pub async fn changes(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    let list = blocking(&state, move |e| Ok(e.changes(&id)?)).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|c| {
            let kind = match c.kind {
                hako_image::ChangeKind::Modified => 0,
                hako_image::ChangeKind::Added => 1,
                hako_image::ChangeKind::Deleted => 2,
            };
            json!({"Path": c.path, "Kind": kind})
        })
        .collect();
    Ok(Json(out).into_response())
}

/// `GET /containers/{id}/export`: the root filesystem as a tar stream.
pub async fn export(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    blocking(&state, {
        let id = id.clone();
        move |e| Ok(e.get(&id).map(|_| ())?)
    })
    .await?;
    let (mut w, body) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let _ = engine.export(&id, &mut w);
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/x-tar".parse().expect("header"));
    Ok(r)
}

/// `POST /containers/prune?filters=`.
pub async fn prune(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let f = Query::parse(q.as_deref()).filters()?;
    let (report, _) = blocking(&state, move |e| Ok(e.container_prune(&f)?)).await?;
    Ok(Json(report).into_response())
}

/// Writes stdout and stderr as stdcopy frames (or raw with a tty).
struct Framed {
    w: ChannelWriter,
    kind: u8,
    tty: bool,
}

impl Write for Framed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.tty {
            self.w.write_all(buf)?;
        } else {
            write_frame(&mut self.w, self.kind, buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The content type of a container's stream: multiplexed without a tty (API >= 1.42).
pub fn stream_type(tty: bool, version: ApiVersion) -> &'static str {
    if !tty && version.at_least(1, 42) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// `GET /containers/{id}/logs?follow=&stdout=&stderr=&since=&until=&timestamps=&tail=`.
pub async fn logs(
    St(state): St<State>,
    Path(id): Path<String>,
    Extension(version): Extension<ApiVersion>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let (stdout, stderr) = (q.bool("stdout", false), q.bool("stderr", false));
    if !stdout && !stderr {
        return Err(ApiError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let time = |k: &str| -> ApiResult<Option<std::time::SystemTime>> {
        match q.get(k).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(s) => {
                let n = hako_engine::events::parse_time(s)?;
                Ok(Some(
                    std::time::UNIX_EPOCH + Duration::from_nanos(u64::try_from(n).unwrap_or(0)),
                ))
            }
        }
    };
    let o = LogOptions {
        follow: q.bool("follow", false),
        tail: match q.get("tail") {
            None | Some("" | "all") => None,
            Some(n) => Some(
                n.parse()
                    .map_err(|_| ApiError::bad(format!("invalid tail value {n:?}")))?,
            ),
        },
        since: time("since")?,
        until: time("until")?,
        timestamps: q.bool("timestamps", false),
        stdout,
        stderr,
        details: q.bool("details", false),
    };
    // Opened before the answer: a client that reads it only after removing the container
    // (docker-py's `run(remove=True)`) still gets what was logged.
    let open = blocking(&state, move |e| Ok(e.open_logs(&id)?)).await?;
    let tty = open.tty();
    let (w, body) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let closed = w.clone();
        let mut out = Framed {
            w: w.clone(),
            kind: STDOUT,
            tty,
        };
        let mut err = Framed {
            w,
            kind: STDERR,
            tty,
        };
        let _ = engine.print_logs(open, &o, &mut out, &mut err, &|| closed.closed());
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        "content-type",
        stream_type(tty, version).parse().expect("header"),
    );
    Ok(r)
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: one JSON object per second.
pub async fn stats(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let streaming = q.bool("stream", true);
    let one_shot = q.bool("one-shot", false);
    let first = blocking(&state, {
        let id = id.clone();
        move |e| Ok(e.container_stats(&id, None)?)
    })
    .await?;
    if !streaming && one_shot {
        return Ok(Json(first).into_response());
    }
    let (mut w, body) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut prev = first;
        loop {
            std::thread::sleep(if streaming {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(500)
            });
            let Ok(next) = engine.container_stats(&id, Some(&prev)) else {
                return;
            };
            let v = serde_json::to_value(&next).unwrap_or(Value::Null);
            if crate::body::line(&mut w, &v).is_err() || !streaming {
                return;
            }
            prev = next;
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    Ok(r)
}
