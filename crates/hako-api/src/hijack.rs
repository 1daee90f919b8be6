//! Hijacked connections (`attach`, exec `start`): the client asks `Connection: Upgrade,
//! Upgrade: tcp`, gets `101 UPGRADED`, and the socket then carries raw stdio: the client's
//! bytes go to the container's stdin (minus the detach keys, which end the attach), the
//! container's output comes back (stdcopy frames without a tty). The client's half-close
//! closes stdin; the stream ends when the output does.

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, Request, State as St};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hako_engine::stream::{DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys};
use hako_engine::{AttachOptions, Attached};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::State;
use crate::body::{blocking, json_or_default};
use crate::containers::stream_type;
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::version::ApiVersion;

fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"))
}

/// The 101 answer.
fn switching(content_type: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&detachKeys=&logs=`.
pub async fn attach(
    St(state): St<State>,
    Path(id): Path<String>,
    Extension(version): Extension<ApiVersion>,
    RawQuery(q): RawQuery,
    mut req: Request,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let any = ["stdin", "stdout", "stderr"]
        .iter()
        .any(|k| q.get(k).is_some());
    // Docker: with none of the three given, all three are wanted.
    let o = AttachOptions {
        stdin: if any { q.bool("stdin", false) } else { true },
        stdout: if any { q.bool("stdout", false) } else { true },
        stderr: if any { q.bool("stderr", false) } else { true },
    };
    let (streaming, logs) = (q.bool("stream", false), q.bool("logs", false));
    if !streaming && !logs {
        return Err(ApiError::bad(
            "Bad parameters: at least one of stream or logs must be given",
        ));
    }
    let keys = detach_keys(q.get("detachKeys"))?;
    let upgrade = wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    // As dockerd: the log so far first (`logs=1`), then the live stream (`stream=1`). The
    // log is streamed as it is read; the attach is made after it.
    let (rec_id, tty, o) = blocking(&state, move |e| {
        let rec = e.get(&id)?;
        let o = AttachOptions {
            stdin: o.stdin && rec.config.open_stdin.unwrap_or(false),
            ..o
        };
        Ok((rec.id, rec.config.tty.unwrap_or(false), o))
    })
    .await?;
    if logs {
        let replay = log_replay(&state, rec_id.clone(), tty, o);
        let ct = stream_type(tty, version);
        let later = async move {
            if streaming {
                attach_after(&state, rec_id, o).await
            } else {
                None
            }
        };
        if !upgrade {
            return Ok(output_only(ct, Some(replay), later));
        }
        tokio::spawn(async move {
            let Ok(up) = on_upgrade.await else { return };
            let mut io = TokioIo::new(up);
            if forward(replay, &mut io).await.is_err() {
                return;
            }
            match later.await {
                Some(att) => bridge(io, att, keys).await,
                None => {
                    let _ = io.shutdown().await;
                }
            }
        });
        return Ok(switching(ct));
    }
    // The checks and the container's lock now (a 404 or 409 is this request's answer);
    // the shim's spawn and the connection to it after the 101, while the client sends its
    // `wait` and `start` (the start waits for the lock: it never runs the container before
    // the attach is connected).
    let pending = blocking(&state, move |e| Ok(e.attach_begin(&rec_id, &o)?)).await?;
    let ct = stream_type(tty, version);
    if !upgrade {
        return Ok(output_only(ct, None, async move {
            attach_end(&state, pending).await
        }));
    }
    tokio::spawn(async move {
        let att = attach_end(&state, pending).await;
        let Ok(up) = on_upgrade.await else { return };
        let mut io = TokioIo::new(up);
        match att {
            Some(att) => bridge(io, att, keys).await,
            None => {
                let _ = io.shutdown().await;
            }
        }
    });
    Ok(switching(ct))
}

/// [`hako_engine::Engine::attach_finish`]. `None` when it cannot be made: a container whose
/// process cannot be created (the attach, made before `start` by `docker run`, ends at once
/// and `start` reports the error, as with dockerd), or another failure (a taken address...:
/// the `start` that follows meets it too).
async fn attach_end(state: &State, p: hako_engine::PendingAttach) -> Option<Attached> {
    match blocking(state, move |e| Ok(e.attach_finish(p))).await {
        Ok(Ok(att)) => Some(att),
        Ok(Err(hako_engine::Error::Runtime { .. })) | Err(_) => None,
        Ok(Err(e)) => {
            tracing::debug!("attach: {e} (the start that follows reports it)");
            None
        }
    }
}

/// The live attach after a log replay; `None` when it cannot be made (the container
/// stopped meanwhile...): the stream then ends after the log, as dockerd's does.
async fn attach_after(state: &State, id: String, o: AttachOptions) -> Option<Attached> {
    blocking(state, move |e| Ok(e.attach_with(&id, &o).ok()))
        .await
        .ok()
        .flatten()
}

/// Writes every chunk of `rx` to `io`.
async fn forward<W: tokio::io::AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<Bytes>,
    io: &mut W,
) -> std::io::Result<()> {
    while let Some(b) = rx.recv().await {
        io.write_all(&b).await?;
    }
    Ok(())
}

/// The container's log so far as an attach carries it (stdcopy frames without a tty, the
/// raw bytes with one; only the streams asked for), read by a blocking task into a small
/// channel: a large log is never held whole, and a client that leaves stops the reading.
fn log_replay(state: &State, id: String, tty: bool, o: AttachOptions) -> mpsc::Receiver<Bytes> {
    use std::io::Write;
    struct Sink {
        tx: mpsc::Sender<Bytes>,
        kind: u8,
        tty: bool,
    }
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut chunk = Vec::with_capacity(b.len() + 8);
            if self.tty {
                chunk.extend_from_slice(b);
            } else {
                hako_engine::stream::write_frame(&mut chunk, self.kind, b)?;
            }
            self.tx.blocking_send(Bytes::from(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (tx, rx) = mpsc::channel(8);
    if !(o.stdout || o.stderr) {
        return rx;
    }
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let lo = hako_engine::logs::LogOptions {
            stdout: o.stdout,
            stderr: o.stderr,
            ..Default::default()
        };
        let mut out = Sink {
            tx: tx.clone(),
            kind: hako_engine::stream::STDOUT,
            tty,
        };
        let mut err = Sink {
            tx,
            kind: hako_engine::stream::STDERR,
            tty,
        };
        if let Err(e) = engine.logs(&id, &lo, &mut out, &mut err) {
            tracing::debug!(error = %e, "attach log replay of {id}");
        }
    });
    rx
}

fn detach_keys(given: Option<&str>) -> ApiResult<Vec<u8>> {
    match given {
        // Docker: an empty detachKeys turns detaching off only when explicitly empty?
        // It means "the default"; a value is parsed.
        None | Some("") => Ok(DEFAULT_DETACH_KEYS.to_vec()),
        Some(k) => Ok(parse_detach_keys(k)?),
    }
}

/// For clients that do not upgrade: `first` (a log replay), then the output of the
/// attach `att` gives, as a plain streaming body.
fn output_only(
    ct: &'static str,
    first: Option<mpsc::Receiver<Bytes>>,
    att: impl std::future::Future<Output = Option<Attached>> + Send + 'static,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        if let Some(mut first) = first {
            while let Some(b) = first.recv().await {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        let Some(att) = att.await else { return };
        let Ok(std) = att.stream.try_clone() else {
            return;
        };
        if std.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(mut s) = tokio::net::UnixStream::from_std(std) else {
            return;
        };
        let _keep = att;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// Copies between the client's upgraded connection and the shim's attach stream until
/// the output ends, the client leaves, or it types the detach keys.
async fn bridge<C>(client: C, att: Attached, keys: Vec<u8>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(std) = att.stream.try_clone() else {
        return;
    };
    if std.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(shim) = tokio::net::UnixStream::from_std(std) else {
        return;
    };
    let (mut shim_r, mut shim_w) = shim.into_split();
    let (mut cli_r, mut cli_w) = tokio::io::split(client);
    let input = async move {
        let mut scanner = DetachScanner::new(keys);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match cli_r.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    // The client closed its input: close the container's stdin.
                    let _ = shim_w.shutdown().await;
                    std::future::pending::<()>().await;
                }
                Ok(n) => {
                    let (out, detached) = scanner.feed(&buf[..n]);
                    if shim_w.write_all(&out).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if detached {
                        return;
                    }
                }
            }
        }
    };
    let output = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match shim_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if cli_w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = cli_w.flush().await;
        let _ = cli_w.shutdown().await;
    };
    tokio::select! {
        () = input => {}
        () = output => {}
    }
    drop(att);
}

/// `POST /exec/{id}/start` body.
#[derive(Debug, Default, Deserialize)]
struct StartBody {
    #[serde(rename = "Detach", default)]
    detach: bool,
    #[serde(rename = "Tty", default)]
    _tty: bool,
}

/// `POST /exec/{id}/start`: detached → 200 and nothing else; otherwise hijacked. A
/// process that cannot be started gets its error written into the stream (the client
/// then reads the exit code, 126/127, from exec inspect), as Docker does.
pub async fn exec_start(
    St(state): St<State>,
    Path(id): Path<String>,
    Extension(version): Extension<ApiVersion>,
    mut req: Request,
) -> ApiResult<Response> {
    let upgrade = wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), crate::body::MAX_JSON)
        .await
        .map_err(|e| ApiError::bad(format!("reading the body: {e}")))?;
    let b: StartBody = json_or_default(&body)?;
    let info = blocking(&state, {
        let id = id.clone();
        move |e| Ok(e.exec_inspect(&id)?)
    })
    .await?;
    if info.running == Some(true) || info.exit_code.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Error: Exec command {id} is already running"),
        ));
    }
    if b.detach {
        blocking(&state, move |e| {
            e.exec_start(&id, true)?;
            Ok(())
        })
        .await?;
        return Ok(StatusCode::OK.into_response());
    }
    let tty = info
        .process_config
        .as_ref()
        .and_then(|p| p.tty)
        .unwrap_or(false);
    let keys = detach_keys(info.detach_keys.as_deref())?;
    let ct = stream_type(tty, version);
    if !upgrade {
        return match start_attached(&state, id).await? {
            Ok(Some(att)) => Ok(output_only(ct, None, async move { Some(att) })),
            Ok(None) => Ok(StatusCode::OK.into_response()),
            Err(message) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)),
        };
    }
    // As dockerd: the 101 first, the exec started once the connection is the client's.
    // Started before, its first output could reach the client in the same read as the
    // 101's headers, where a client that buffers the headers (docker-py's http.client)
    // loses it: an exec_run with exit code 0 and no output, about 1 run in 3.
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        let mut io = TokioIo::new(up);
        let message = match start_attached(&state, id).await {
            Ok(Ok(Some(att))) => return bridge(io, att, keys).await,
            Ok(Ok(None)) => {
                let _ = io.shutdown().await;
                return;
            }
            Ok(Err(message)) => message,
            Err(e) => e.message,
        };
        let text = format!("{message}\r\n");
        let framed = if tty {
            text.into_bytes()
        } else {
            let mut v = Vec::new();
            let _ = hako_engine::stream::write_frame(
                &mut v,
                hako_engine::stream::STDERR,
                text.as_bytes(),
            );
            v
        };
        let _ = io.write_all(&framed).await;
        let _ = io.shutdown().await;
    });
    Ok(switching(ct))
}

/// Starts an exec attached: its stream, or the runtime's message when the process could not
/// be made (an error of the exec, reported in its stream as dockerd does).
async fn start_attached(state: &State, id: String) -> ApiResult<Result<Option<Attached>, String>> {
    blocking(state, move |e| match e.exec_start(&id, false) {
        Ok(att) => Ok(Ok(att)),
        Err(err @ hako_engine::Error::Runtime { .. }) => Ok(Err(err.to_string())),
        Err(other) => Err(other.into()),
    })
    .await
}
