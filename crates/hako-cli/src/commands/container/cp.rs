//! `hako cp [-a] [-L] SRC DEST`: files between a container and the host, either way, or a
//! tar stream (`-`) from stdin / to stdout.
//!
//! Docker's rules for where things land:
//!
//! | source      | destination                | result                                      |
//! |-------------|----------------------------|---------------------------------------------|
//! | file        | missing                    | written as DEST                             |
//! | file        | missing, ends with `/`     | error: the directory must exist             |
//! | file        | existing file              | overwritten                                 |
//! | file        | existing directory         | DEST/NAME                                   |
//! | directory   | missing                    | DEST made, the contents copied into it      |
//! | directory   | existing file              | error                                       |
//! | directory   | existing directory         | DEST/NAME (`SRC/.`: the contents into DEST) |
//!
//! Both sides are a tar stream in between (as in Docker): one thread writes the source as a
//! tar, named for its destination, the other extracts it. Container paths are resolved
//! inside the container's root ([`hako_engine::archive`]); host paths as usual.

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use hako_engine::Engine;
use hako_engine::archive::{Owner, PathStat, Root};

use super::engine_err;
use crate::context::Global;
use crate::units::human_size;

/// Arguments of `hako cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed
    /// if no terminal is attached to STDERR
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar stream on STDIN)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar stream to STDOUT)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// One side of a copy.
#[derive(Debug)]
enum Loc {
    Host(String),
    Container(String, String),
    Stdio,
}

/// Docker's `splitCpArg`: an absolute path or one starting with `.` is local, else
/// `NAME:PATH` names a container.
fn parse(arg: &str) -> Loc {
    if arg == "-" {
        return Loc::Stdio;
    }
    if arg.starts_with('/') || arg.starts_with('.') {
        return Loc::Host(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Loc::Container(c.to_string(), p.to_string()),
        _ => Loc::Host(arg.to_string()),
    }
}

/// A container path, absolute (relative ones are relative to `/`, as in Docker).
fn abs(p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// A host path, absolute.
fn host_abs(p: &str) -> Result<String> {
    if p.starts_with('/') {
        return Ok(p.to_string());
    }
    let cwd = std::env::current_dir().context("current directory")?;
    let mut s = cwd.display().to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    s.push_str(p);
    Ok(s)
}

/// `SRC/.`: the contents of the directory, not the directory.
fn split_contents(src: &str) -> (&str, bool) {
    match src.strip_suffix("/.") {
        Some(rest) => (if rest.is_empty() { "/" } else { rest }, true),
        None => (src, false),
    }
}

fn base_name(p: &str) -> OsString {
    Path::new(p.trim_end_matches('/'))
        .file_name()
        .map_or_else(|| OsString::from("."), OsStr::to_os_string)
}

fn parent(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => t[..i].to_string(),
    }
}

/// Where the source goes: the directory to extract into and the name its top entry
/// gets there (`None`: only the directory's contents).
fn plan(
    src: &PathStat,
    contents_only: bool,
    dest: &str,
    dest_stat: Option<&PathStat>,
) -> Result<(String, Option<OsString>)> {
    let src_name = if src.name == "/" {
        OsString::from(".")
    } else {
        OsString::from(&src.name)
    };
    match dest_stat {
        Some(d) if d.is_dir => Ok((
            dest.to_string(),
            (!contents_only && src_name != ".").then_some(src_name),
        )),
        Some(_) if src.is_dir => bail!("cannot copy a directory to a file: {dest}"),
        Some(_) => Ok((parent(dest), Some(base_name(dest)))),
        None if dest.ends_with('/') && !src.is_dir => {
            bail!("destination directory {dest} must exist")
        }
        None => Ok((parent(dest), Some(base_name(dest)))),
    }
}

/// The destination and what it is. A dangling symlink is followed to the path it names,
/// as Docker does (`cp f c:/link` with `/link -> /new` writes `/new`); inside a container
/// that path is again resolved in the container's root.
fn resolve_dest(
    dest: &str,
    stat: impl Fn(&str, bool) -> Result<Option<PathStat>>,
) -> Result<(String, Option<PathStat>)> {
    let mut d = dest.to_string();
    for _ in 0..16 {
        if let Some(s) = stat(&d, true)? {
            return Ok((d, Some(s)));
        }
        match stat(&d, false)?.and_then(|s| s.link_target) {
            Some(t) if t.starts_with('/') => d = t,
            Some(t) => d = format!("{}/{t}", parent(&d)),
            None => return Ok((d, None)),
        }
    }
    bail!("{dest}: too many levels of symbolic links")
}

/// Counts what passes.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Runs `produce` (writing a tar) and `consume` (reading it) on two threads joined by a
/// pipe; returns the bytes that passed. The consumer's error wins: the producer's is then
/// only a broken pipe.
fn pipe_through(
    produce: impl FnOnce(&mut dyn Write) -> Result<()> + Send,
    consume: impl FnOnce(&mut dyn Read) -> Result<()>,
) -> Result<u64> {
    let (mut reader, writer) = std::io::pipe().context("create a pipe")?;
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut w = Counting {
                inner: writer,
                bytes: 0,
            };
            let r = produce(&mut w);
            (r, w.bytes)
        });
        let consumed = consume(&mut reader);
        // Drain so the producer never blocks on a full pipe after a failed consumer.
        drop(reader);
        let (produced, bytes) = h.join().map_err(|_| anyhow!("copy thread panicked"))?;
        consumed?;
        produced?;
        Ok(bytes)
    })
}

fn host_root() -> Result<Root> {
    Root::open(Path::new("/")).context("open /")
}

/// `hako cp`.
pub fn run(g: &Global, a: &CpArgs) -> Result<()> {
    let (src, dest) = (parse(&a.src), parse(&a.dest));
    let engine = g.open_engine()?;
    let (bytes, shown) = match (&src, &dest) {
        (Loc::Container(..), Loc::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Loc::Host(_) | Loc::Stdio, Loc::Host(_) | Loc::Stdio) => {
            bail!("must specify at least one container source")
        }
        (Loc::Container(c, p), Loc::Stdio) => {
            let p = abs(p);
            let mut out = Counting {
                inner: std::io::BufWriter::new(std::io::stdout().lock()),
                bytes: 0,
            };
            let (path, _) = split_contents(&p);
            let name = base_name(path);
            return match engine.copy_out(c, path, a.follow_link, Some(&name), &mut out) {
                Ok(()) => Ok(out.flush()?),
                Err(e) => super::export::reader_left(e),
            };
        }
        (Loc::Stdio, Loc::Container(c, p)) => {
            let p = abs(p);
            let mut input = std::io::stdin().lock();
            engine
                .copy_in(c, &p, &mut input, a.archive, true)
                .map_err(engine_err)?;
            return Ok(());
        }
        (Loc::Container(c, p), Loc::Host(h)) => (
            from_container(&engine, a, c, &abs(p), &host_abs(h)?)?,
            h.clone(),
        ),
        (Loc::Host(h), Loc::Container(c, p)) => (
            into_container(&engine, a, &host_abs(h)?, c, &abs(p))?,
            format!("{c}:{p}"),
        ),
    };
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!("Successfully copied {} to {shown}", human_size(bytes));
    }
    Ok(())
}

fn from_container(engine: &Engine, a: &CpArgs, c: &str, src: &str, dest: &str) -> Result<u64> {
    let (path, contents_only) = split_contents(src);
    let st = engine
        .path_stat(c, path, a.follow_link)
        .map_err(engine_err)?
        .ok_or_else(|| anyhow!("Could not find the file {path} in container {c}"))?;
    if contents_only && !st.is_dir {
        bail!("{src}: not a directory");
    }
    let host = host_root()?;
    let (dest, dest_stat) = resolve_dest(dest, |p, follow| {
        host.stat(p, follow).with_context(|| format!("stat {p}"))
    })?;
    let dest = dest.as_str();
    let (dir, name) = plan(&st, contents_only, dest, dest_stat.as_ref())?;
    if host
        .stat(&dir, true)
        .with_context(|| format!("stat {dir}"))?
        .is_none()
    {
        bail!("no such directory: {dir}");
    }
    pipe_through(
        |w| {
            engine
                .copy_out(c, path, a.follow_link, name.as_deref(), w)
                .map_err(engine_err)
        },
        |r| {
            let owner = if a.archive {
                Owner::Keep
            } else {
                Owner::Caller
            };
            host.extract(&dir, r, owner)
                .with_context(|| format!("copy to {dest}"))
        },
    )
}

fn into_container(engine: &Engine, a: &CpArgs, src: &str, c: &str, dest: &str) -> Result<u64> {
    let (path, contents_only) = split_contents(src);
    let host = host_root()?;
    let st = host
        .stat(path, a.follow_link)
        .with_context(|| format!("stat {path}"))?
        .ok_or_else(|| anyhow!("lstat {path}: no such file or directory"))?;
    if contents_only && !st.is_dir {
        bail!("{src}: not a directory");
    }
    let (dest, dest_stat) = resolve_dest(dest, |p, follow| {
        engine.path_stat(c, p, follow).map_err(engine_err)
    })?;
    let dest = dest.as_str();
    let (dir, name) = plan(&st, contents_only, dest, dest_stat.as_ref())?;
    // Without -a the files belong to root in the container (Docker's default).
    let owner = (!a.archive).then_some((0, 0));
    pipe_through(
        |w| {
            host.write_tar(path, a.follow_link, name.as_deref(), owner, w)
                .with_context(|| format!("read {path}"))
        },
        // As the docker CLI: a directory never replaces a file (noOverwriteDirNonDir).
        |r| engine.copy_in(c, &dir, r, true, true).map_err(engine_err),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, is_dir: bool) -> PathStat {
        PathStat {
            name: name.into(),
            size: 0,
            mode: 0,
            is_dir,
            link_target: None,
            mtime: (0, 0),
        }
    }

    #[test]
    fn docker_destination_rules() {
        let dir = st("d", true);
        let file = st("f", false);
        let p = |s: &PathStat, c: bool, d: &str, ds: Option<&PathStat>| {
            plan(s, c, d, ds).map(|(d, n)| (d, n.map(|n| n.to_string_lossy().into_owned())))
        };
        assert_eq!(
            p(&file, false, "/tmp/x", None).unwrap(),
            ("/tmp".into(), Some("x".into()))
        );
        assert!(p(&file, false, "/tmp/x/", None).is_err());
        assert_eq!(
            p(&file, false, "/tmp", Some(&dir)).unwrap(),
            ("/tmp".into(), Some("f".into()))
        );
        assert_eq!(
            p(&file, false, "/tmp/g", Some(&file)).unwrap(),
            ("/tmp".into(), Some("g".into()))
        );
        assert!(p(&dir, false, "/tmp/g", Some(&file)).is_err());
        assert_eq!(
            p(&dir, false, "/tmp", Some(&dir)).unwrap(),
            ("/tmp".into(), Some("d".into()))
        );
        assert_eq!(
            p(&dir, true, "/tmp", Some(&dir)).unwrap(),
            ("/tmp".into(), None)
        );
        assert_eq!(
            p(&dir, false, "/new", None).unwrap(),
            ("/".into(), Some("new".into()))
        );
    }

    #[test]
    fn arguments_name_a_side() {
        assert!(matches!(parse("-"), Loc::Stdio));
        assert!(matches!(parse("/a:b"), Loc::Host(_)));
        assert!(matches!(parse("./a:b"), Loc::Host(_)));
        assert!(matches!(parse("c1:/etc"), Loc::Container(c, p) if c == "c1" && p == "/etc"));
        assert!(matches!(parse("file"), Loc::Host(_)));
    }
}
