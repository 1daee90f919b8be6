//! BuildKit's progress output: `--progress=plain` lines (`#5 [2/3] RUN make`, `#5 0.412
//! output`, `#5 DONE 0.4s`) and the live terminal view (`[+] Building 1.2s (5/7)`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hako_build::progress::{Event, Progress};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`-q`).
    Quiet,
    /// Line by line.
    Plain,
    /// A view redrawn in place.
    Tty,
}

#[derive(Debug)]
struct Vertex {
    name: String,
    started: Instant,
    done: Option<Duration>,
    cached: bool,
    error: bool,
    config_only: bool,
    logs: Vec<(Duration, String)>,
    partial: BTreeMap<u8, Vec<u8>>,
    statuses: Vec<String>,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    start: Instant,
    vertices: BTreeMap<u64, Vertex>,
    last: Option<u64>,
    drawn: usize,
    finished: bool,
    /// Build check violations, listed after the build as BuildKit's client does.
    checks: Vec<String>,
}

/// Renders build events on stderr.
#[derive(Debug)]
pub struct Renderer {
    state: Arc<Mutex<State>>,
    painter: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn width() -> usize {
    hako_sys::tty::get_winsize(std::os::fd::AsFd::as_fd(&std::io::stderr()))
        .map(|(_, cols)| usize::from(cols))
        .unwrap_or(80)
        .max(40)
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

impl Renderer {
    /// A renderer; `Tty` starts a thread that redraws the view.
    pub fn new(mode: Mode) -> Renderer {
        let state = Arc::new(Mutex::new(State {
            mode,
            start: Instant::now(),
            vertices: BTreeMap::new(),
            last: None,
            drawn: 0,
            finished: false,
            checks: Vec::new(),
        }));
        if mode == Mode::Plain {
            eprintln!("#0 building with \"default\" instance using hako driver");
        }
        let painter = (mode == Mode::Tty).then(|| {
            let s = state.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(120));
                    let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
                    if st.finished {
                        break;
                    }
                    draw(&mut st, false);
                }
            })
        });
        Renderer {
            state,
            painter: Mutex::new(painter),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the live view and draws its final state.
    pub fn finish(&self) {
        {
            let mut st = self.lock();
            if st.finished {
                return;
            }
            st.finished = true;
            if st.mode == Mode::Tty {
                draw(&mut st, true);
            }
        }
        if let Some(h) = self.painter.lock().ok().and_then(|mut p| p.take()) {
            let _ = h.join();
        }
        let st = self.lock();
        if st.mode != Mode::Quiet && !st.checks.is_empty() {
            let n = st.checks.len();
            let mut out = format!(
                "\n {n} warning{} found (use docker --debug to expand):\n",
                if n == 1 { "" } else { "s" }
            );
            for c in &st.checks {
                out.push_str(&format!(" - {c}\n"));
            }
            eprint!("{out}");
        }
    }

    /// The last `n` output lines of the vertex named `name` (`0.412 text`).
    pub fn tail_of(&self, name: &str, n: usize) -> Vec<String> {
        let st = self.lock();
        let Some(v) = st.vertices.values().find(|v| v.name == name) else {
            return Vec::new();
        };
        let mut lines: Vec<String> = v
            .logs
            .iter()
            .map(|(t, l)| format!("{:.3} {l}", t.as_secs_f64()))
            .collect();
        for p in v.partial.values().filter(|p| !p.is_empty()) {
            lines.push(format!(
                "{:.3} {}",
                v.started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(p)
            ));
        }
        let skip = lines.len().saturating_sub(n);
        lines.split_off(skip)
    }
}

/// Plain output: the header again when output switches between vertices.
fn plain_header(st: &mut State, id: u64, out: &mut String) {
    if st.last != Some(id) {
        if st.last.is_some() {
            out.push('\n');
        }
        if let Some(v) = st.vertices.get(&id) {
            out.push_str(&format!("#{id} {}\n", v.name));
        }
        st.last = Some(id);
    }
}

impl Progress for Renderer {
    fn event(&self, e: Event) {
        let mut st = self.lock();
        let plain = st.mode == Mode::Plain;
        let mut out = String::new();
        match e {
            Event::Start { id, name, step } => {
                let config_only = step.as_ref().is_some_and(|s| s.config_only);
                st.vertices.insert(
                    id,
                    Vertex {
                        name,
                        started: Instant::now(),
                        done: None,
                        cached: false,
                        error: false,
                        config_only,
                        logs: Vec::new(),
                        partial: BTreeMap::new(),
                        statuses: Vec::new(),
                    },
                );
                if plain && !config_only {
                    plain_header(&mut st, id, &mut out);
                }
            }
            Event::Log { id, stream, data } => {
                let mut lines = Vec::new();
                if let Some(v) = st.vertices.get_mut(&id) {
                    let t = v.started.elapsed();
                    let buf = v.partial.entry(stream).or_default();
                    buf.extend_from_slice(&data);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        let text = String::from_utf8_lossy(&line[..line.len() - 1])
                            .trim_end_matches('\r')
                            .to_string();
                        lines.push((t, text));
                    }
                    v.logs.extend(lines.iter().cloned());
                }
                if plain && !lines.is_empty() {
                    plain_header(&mut st, id, &mut out);
                    for (t, l) in lines {
                        out.push_str(&format!("#{id} {:.3} {l}\n", t.as_secs_f64()));
                    }
                }
            }
            Event::Status { id, text } => {
                if let Some(v) = st.vertices.get_mut(&id) {
                    v.statuses.push(text.clone());
                }
                if plain {
                    plain_header(&mut st, id, &mut out);
                    out.push_str(&format!("#{id} {text}\n"));
                }
            }
            Event::Cached { id } => {
                if let Some(v) = st.vertices.get_mut(&id) {
                    v.cached = true;
                }
                if plain {
                    plain_header(&mut st, id, &mut out);
                    out.push_str(&format!("#{id} CACHED\n"));
                }
            }
            Event::Done { id, elapsed } => {
                let mut show = false;
                let mut flush = Vec::new();
                if let Some(v) = st.vertices.get_mut(&id) {
                    v.done = Some(elapsed);
                    show = !v.config_only && !v.cached;
                    for (_, p) in std::mem::take(&mut v.partial) {
                        if !p.is_empty() {
                            flush.push(String::from_utf8_lossy(&p).into_owned());
                        }
                    }
                    let t = v.started.elapsed();
                    v.logs.extend(flush.iter().map(|l| (t, l.clone())));
                }
                if plain && show {
                    plain_header(&mut st, id, &mut out);
                    for l in flush {
                        out.push_str(&format!("#{id} {:.3} {l}\n", elapsed.as_secs_f64()));
                    }
                    out.push_str(&format!("#{id} DONE {:.1}s\n", elapsed.as_secs_f64()));
                }
            }
            Event::Error { id, message } => {
                if let Some(v) = st.vertices.get_mut(&id) {
                    v.error = true;
                    v.done.get_or_insert(v.started.elapsed());
                }
                if plain {
                    plain_header(&mut st, id, &mut out);
                    out.push_str(&format!("#{id} ERROR: {message}\n"));
                }
            }
            Event::Warning { message } => {
                if plain {
                    out.push_str(&format!("WARNING: {message}\n"));
                }
            }
            Event::Check(l) => st.checks.push(l.to_string()),
            Event::Image { .. } | Event::Tagged { .. } => {}
        }
        if !out.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(out.as_bytes());
            let _ = err.flush();
        }
    }
}

/// Redraws the live view in place (the previous frame is erased first).
fn draw(st: &mut State, last: bool) {
    let w = width();
    let shown: Vec<&Vertex> = st.vertices.values().filter(|v| !v.config_only).collect();
    let done = shown.iter().filter(|v| v.done.is_some()).count();
    let mut lines = Vec::new();
    let head = format!(
        "[+] Building {:.1}s ({done}/{}){}",
        st.start.elapsed().as_secs_f64(),
        shown.len(),
        if last { " FINISHED" } else { "" }
    );
    lines.push(head);
    for v in &shown {
        let t = v.done.unwrap_or_else(|| v.started.elapsed());
        let prefix = match (v.cached, v.error) {
            (_, true) => " => ERROR ",
            (true, _) => " => CACHED ",
            _ => " => ",
        };
        let time = format!("{:.1}s", t.as_secs_f64());
        let name = cut(
            &format!("{prefix}{}", v.name),
            w.saturating_sub(time.len() + 2),
        );
        let pad = w.saturating_sub(name.chars().count() + time.len() + 1);
        lines.push(format!("{name}{}{time}", " ".repeat(pad)));
        for s in &v.statuses {
            lines.push(cut(&format!(" => => {s}"), w - 1));
        }
        if v.done.is_none() || v.error {
            let skip = v.logs.len().saturating_sub(6);
            for (_, l) in &v.logs[skip..] {
                lines.push(format!(
                    "\x1b[2m{}\x1b[0m",
                    cut(&format!(" => => # {l}"), w - 1)
                ));
            }
        }
    }
    let mut out = String::new();
    if st.drawn > 0 {
        out.push_str(&format!("\x1b[{}F", st.drawn));
    }
    for l in &lines {
        out.push_str(l);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    st.drawn = lines.len();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

/// The Dockerfile lines around `start..=end`, BuildKit's way.
pub fn snippet(name: &str, text: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = start.saturating_sub(2).max(1);
    let to = (end + 2).min(lines.len());
    let mut out = if start == end {
        format!("{name}:{start}\n")
    } else {
        format!("{name}:{start}-{end}\n")
    };
    out.push_str("--------------------\n");
    for n in from..=to {
        let marker = if (start..=end).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(
            "{n:>4} | {marker} {}\n",
            lines.get(n - 1).copied().unwrap_or("")
        ));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_mark_the_failing_lines() {
        let df = "FROM busybox\nRUN true\nRUN false\nCMD x\nENV a=b\nLABEL c=d\n";
        assert_eq!(
            snippet("Dockerfile", df, 3, 3),
            "Dockerfile:3\n--------------------\n   1 |     FROM busybox\n   2 |     RUN true\n   3 | >>> RUN false\n   4 |     CMD x\n   5 |     ENV a=b\n--------------------\n"
        );
        assert!(snippet("Dockerfile", df, 1, 2).starts_with("Dockerfile:1-2\n"));
    }
}
