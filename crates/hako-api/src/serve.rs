//! Listening: the unix socket (root-owned, 0660 with group `hako` when that group exists,
//! else 0600, as dockerd does with `docker`); TCP with TLS and verified client certificates
//! (`--tlsverify`, as dockerd); or plain TCP on loopback with an explicit `--insecure` and a
//! warning. Stops on SIGTERM/SIGINT and removes its socket; containers run on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hako_engine::Engine;

use crate::tls::{TlsFiles, TlsListener, acceptor};
use crate::{AppState, router, version};

/// Where to listen.
#[derive(Debug, Clone)]
pub enum Listen {
    /// `unix://PATH`.
    Unix(PathBuf),
    /// `tcp://HOST:PORT` (loopback, `--insecure`).
    Tcp(SocketAddr),
}

impl Listen {
    /// Docker's `-H` syntax: `unix:///run/hako/hako.sock`, `tcp://127.0.0.1:2375`, or a
    /// plain path.
    pub fn parse(s: &str) -> Result<Listen, String> {
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let addr: SocketAddr = a
                .parse()
                .map_err(|e| format!("invalid tcp address {a:?}: {e} (use tcp://IP:PORT)"))?;
            return Ok(Listen::Tcp(addr));
        }
        if s.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(s)));
        }
        Err(format!(
            "invalid --host {s:?}: use unix:///PATH or tcp://127.0.0.1:PORT"
        ))
    }
}

/// `hako serve`'s options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: Listen,
    /// Plain TCP was asked for explicitly.
    pub insecure: bool,
    /// `--tlsverify` with its files (TCP only).
    pub tls: Option<TlsFiles>,
}

/// The service: version layer around the router.
pub fn app(engine: Arc<Engine>) -> Router {
    let state = Arc::new(AppState {
        engine: engine.clone(),
    });
    Router::new()
        .fallback_service(router(state))
        .layer(axum::middleware::from_fn(version::layer))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                settled(engine.clone(), req, next)
            },
        ))
        .layer(axum::middleware::from_fn(count))
}

/// How long a request waits for removals finishing after their answers (usually done in
/// ~2 ms; one whose shim hangs must not hold every other request for long).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server's end waits for them.
const SETTLE_AT_END: Duration = Duration::from_secs(15);

/// A request (but a ping) waits for the removals that finish after their answers
/// (`docker run --rm`'s: its root filesystem, directories and interfaces), usually done
/// already: no request sees half of one, an image a gone container still holds, say.
async fn settled(
    engine: Arc<Engine>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if engine.removals_finishing() && !req.uri().path().ends_with("/_ping") {
        let _ = tokio::task::spawn_blocking(move || engine.settle(SETTLE_TIMEOUT)).await;
    }
    next.run(req).await
}

/// Requests so far (the idle trim's clock).
static REQUESTS: AtomicU64 = AtomicU64::new(0);

async fn count(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    // Like dockerd's "Calling POST /v1.47/containers/create" at debug level, with the
    // time to the answer's head (a hijacked stream's: to its 101).
    let (method, uri, t0) = (req.method().clone(), req.uri().clone(), Instant::now());
    let res = next.run(req).await;
    tracing::debug!(
        "{method} {uri} -> {} in {:.2} ms",
        res.status().as_u16(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    res
}

/// Once a second of no new request follows some, the engine gives its idle memory back
/// (SQLite page caches; a list or a pull leaves megabytes of freed buffers that glibc
/// otherwise keeps); and once more when the blocking threads that served them have ended
/// ([`BLOCKING_KEEP_ALIVE`] later): a thread's malloc cache goes back to its arena only when
/// the thread exits, after the first trim (the removal of `--rm` containers left ~3 MB so).
async fn trim_when_idle(engine: Arc<Engine>) {
    // `trimmed` starts as "never": a server that got no request yet settles once too.
    let (mut seen, mut trimmed, mut idle) = (0, u64::MAX, 0u64);
    let settle = BLOCKING_KEEP_ALIVE.as_secs() + 2;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let n = REQUESTS.load(Ordering::Relaxed);
        idle = if n == seen { idle + 1 } else { 0 };
        seen = n;
        if n != trimmed && (idle == 1 || idle == settle) {
            let e = engine.clone();
            let _ = tokio::task::spawn_blocking(move || e.release_memory()).await;
            if idle == settle {
                trimmed = n;
                // The code's pages too: they stay in the page cache (shared with every hako
                // process), and the next request maps back what it runs.
                hako_sys::malloc::release_code();
            }
        }
    }
}

/// How long an idle blocking thread (the engine's work) lives on.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

fn hako_gid() -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == "hako").then(|| f.nth(1)?.parse().ok())?
    })
}

/// What to listen with, checked before anything is bound.
enum Plan {
    Unix(PathBuf),
    Tls(SocketAddr, tokio_rustls::TlsAcceptor),
    Plain(SocketAddr),
}

fn plan(opts: &ServeOptions) -> Result<Plan, String> {
    match (&opts.listen, &opts.tls) {
        (Listen::Unix(_), Some(_)) => Err(
            "--tlsverify is for tcp:// addresses: a unix socket is protected by its owner and mode"
                .into(),
        ),
        (Listen::Unix(p), None) => Ok(Plan::Unix(p.clone())),
        (Listen::Tcp(addr), Some(files)) => Ok(Plan::Tls(*addr, acceptor(files)?)),
        (Listen::Tcp(addr), None) => {
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "refusing to serve the API on {addr} without TLS: anyone who reaches it controls hako (and so root); use --tlsverify --tlscacert --tlscert --tlskey, or a loopback address with --insecure"
                ));
            }
            if !opts.insecure {
                return Err(format!(
                    "plain TCP on {addr} gives root to anyone who can connect: use --tlsverify --tlscacert --tlscert --tlskey, or add --insecure to do it anyway (loopback only)"
                ));
            }
            eprintln!(
                "WARNING: serving the API on {addr} without TLS: any local user can control hako (and so root) through it"
            );
            Ok(Plan::Plain(*addr))
        }
    }
}

/// Serves until SIGTERM or SIGINT.
pub fn serve(engine: Engine, opts: &ServeOptions) -> Result<(), String> {
    let plan = plan(opts)?;
    // Small when idle: one thread for every connection's I/O (the engine's work runs on
    // blocking threads, which end after 2 s without work), one malloc arena (the few
    // threads seldom allocate at once; every arena keeps pages its live objects pin).
    hako_sys::malloc::limit_arenas(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(256)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
        .map_err(|e| format!("start the runtime: {e}"))?;
    let engine = Arc::new(engine);
    engine.keep_spare_namespace();
    engine.keep_zygote_shim();
    let app = app(engine.clone());
    let kept = engine.clone();
    let served = rt.block_on(async move {
        tokio::spawn(trim_when_idle(engine.clone()));
        // Finished exec sessions go after dockerd's 5 minutes (`exec_create` sweeps too).
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let e = engine.clone();
                let _ = tokio::task::spawn_blocking(move || e.exec_gc(hako_engine::EXEC_KEEP)).await;
            }
        });
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        match plan {
            Plan::Unix(path) => serve_unix(&path, app, shutdown).await,
            Plan::Tls(addr, acceptor) => {
                let tcp = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("listen on {addr}: {e}"))?;
                let listener =
                    TlsListener::new(tcp, acceptor).map_err(|e| format!("listen on {addr}: {e}"))?;
                eprintln!(
                    "hako serve: API {} on tcp://{addr} (TLS; clients need a certificate signed by the --tlscacert CA)",
                    crate::API_VERSION
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(|e| format!("serve: {e}"))
            }
            Plan::Plain(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("listen on {addr}: {e}"))?;
                eprintln!("hako serve: API {} on tcp://{addr}", crate::API_VERSION);
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(|e| format!("serve: {e}"))
            }
        }
    });
    // Removals still finishing after their answers end before the server does.
    kept.settle(SETTLE_AT_END);
    // Shims made ahead for starts that never came end (their unmount timers are gone).
    kept.end_unclaimed();
    kept.drop_spare_namespace();
    kept.drop_zygote_shim();
    served
}

async fn serve_unix(
    path: &std::path::Path,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            return Err(format!(
                "{} is in use: another hako serve (or dockerd) listens there",
                path.display()
            ));
        }
        Err(_) => {
            let _ = std::fs::remove_file(path);
        }
    }
    // Bound with no access for anyone but root, then opened to the group.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| format!("listen on {}: {e}", path.display()))?;
    let mode = match hako_gid() {
        Some(gid) => {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    eprintln!(
        "hako serve: API {} on unix://{}",
        crate::API_VERSION,
        path.display()
    );
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = std::fs::remove_file(path);
    res.map_err(|e| format!("serve: {e}"))
}
