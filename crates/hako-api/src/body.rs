//! Bridges between the async server and the synchronous engine: blocking calls, request
//! bodies as `Read`, response bodies fed by `Write`, JSON bodies with Docker's errors.

use std::io::{self, Read, Write};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::State;
use crate::error::{ApiError, ApiResult};

/// Largest JSON request body (create, exec, volume...): far above any real one.
pub const MAX_JSON: usize = 4 << 20;
/// Largest tar upload (load, import): a cap, not a quota.
pub const MAX_UPLOAD: u64 = 64 << 30;
/// How much of a body is still read (and dropped) after its reader is done with it: a tar
/// reader stops at the end-of-archive block, and the client may still be sending the rest
/// (Go's tar writer adds a second zero block; others pad to 10 KiB). Closing the connection
/// with that unread would reset it, so the client sees "broken pipe" instead of the answer.
/// A reader that stopped on an error early leaves more; past this the connection is closed.
const DRAIN_LIMIT: u64 = 8 << 20;

/// Runs `f` on the engine in a blocking thread.
pub async fn blocking<T, F>(state: &State, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&hako_engine::Engine) -> ApiResult<T> + Send + 'static,
{
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || f(&engine)).await?
}

/// A JSON body, or Docker's 400 (`empty body`, or serde's message for bad JSON).
pub fn json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.len() > MAX_JSON {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_JSON} bytes"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("bad parameter: empty request body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))
}

/// A JSON body that may be empty (then `T::default()`).
pub fn json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json(body)
}

/// The response side of a stream: bytes written here go out as the body; writing fails
/// once the client is gone, which ends the producer.
#[derive(Debug, Clone)]
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
}

impl ChannelWriter {
    /// Whether the client went away.
    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A streaming body and the writer that feeds it.
pub fn stream() -> (ChannelWriter, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, io::Error>(b), rx))
    });
    (ChannelWriter { tx }, Body::from_stream(s))
}

/// The request body as a blocking `Read` (for tar uploads), capped at [`MAX_UPLOAD`]. What
/// the reader leaves unread is read to the end anyway (up to [`DRAIN_LIMIT`]), so that the
/// answer reaches the client.
pub fn reader(body: Body) -> BodyReader {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::spawn(async move {
        let mut s = body.into_data_stream();
        let mut total = 0u64;
        while let Some(chunk) = s.next().await {
            if tx.is_closed() {
                // The reader is gone: drop the rest, up to the limit.
                let mut dropped = chunk.map_or(0, |b| b.len() as u64);
                while dropped <= DRAIN_LIMIT {
                    match s.next().await {
                        Some(Ok(b)) => dropped += b.len() as u64,
                        _ => return,
                    }
                }
                return;
            }
            let item = match chunk {
                Ok(b) => {
                    total += b.len() as u64;
                    if total > MAX_UPLOAD {
                        Err(io::Error::other("upload larger than the limit"))
                    } else {
                        Ok(b)
                    }
                }
                Err(e) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, e)),
            };
            if item.is_err() {
                let _ = tx.send(item).await;
                return;
            }
            // A closed channel is seen at the next chunk, which is then dropped.
            let _ = tx.send(item).await;
        }
    });
    BodyReader {
        rx,
        buf: Bytes::new(),
    }
}

/// See [`reader`].
#[derive(Debug)]
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    buf: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// One JSON line of a progress stream.
pub fn line(w: &mut ChannelWriter, v: &serde_json::Value) -> io::Result<()> {
    let mut b = serde_json::to_vec(v).map_err(io::Error::other)?;
    b.extend_from_slice(b"\r\n");
    w.write_all(&b)
}
