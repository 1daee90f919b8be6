//! Build progress as the Docker Engine API's `POST /build` streams it to a classic client
//! (`DOCKER_BUILDKIT=0 docker build`, docker-py's `images.build`, compose): one JSON object
//! per line, `{"stream": "Step 2/5 : RUN make\n"}` ... `{"aux": {"ID": "sha256:..."}}`,
//! and `{"errorDetail": {"message": ...}, "error": ...}` when the build fails.

use std::io::Write;
use std::sync::Mutex;

use serde_json::json;

use crate::build::BuildError;
use crate::progress::{Event, Progress};

/// Writes classic build messages to `out` (each line flushed).
#[derive(Debug)]
pub struct ClassicStream<W: Write + Send> {
    out: Mutex<W>,
    aux: bool,
    /// RUN steps started whose cache check has not answered yet: `Running in` is printed
    /// once they log or finish (a cache hit prints `Using cache` instead).
    pending: Mutex<Vec<u64>>,
    /// Tags, printed after `Successfully built` as Docker orders them.
    tagged: Mutex<Vec<String>>,
}

impl<W: Write + Send> ClassicStream<W> {
    /// Messages go to `out`.
    pub fn new(out: W) -> ClassicStream<W> {
        ClassicStream {
            out: Mutex::new(out),
            aux: true,
            pending: Mutex::new(Vec::new()),
            tagged: Mutex::new(Vec::new()),
        }
    }

    /// Leaves out the `aux` message with the image id (API versions before 1.30).
    pub fn without_aux(mut self) -> ClassicStream<W> {
        self.aux = false;
        self
    }

    /// One message and its line end in one write, as dockerd sends them (clients that
    /// split on chunk boundaries, like docker-py, choke on a lone trailing newline).
    fn send(&self, v: serde_json::Value) {
        let mut line = v.to_string();
        line.push_str("\r\n");
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(line.as_bytes());
            let _ = o.flush();
        }
    }

    fn stream(&self, text: String) {
        self.send(json!({ "stream": text }));
    }

    /// Takes `id` out of the pending RUN steps; whether it was there.
    fn unpend(&self, id: u64) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = p.len();
        p.retain(|x| *x != id);
        p.len() != before
    }

    fn running(&self, id: u64) {
        if self.unpend(id) {
            self.stream(format!(" ---> Running in {id:012x}\n"));
        }
    }

    /// The final error message of a failed build, worded as the classic builder words
    /// it; a RUN that exited non-zero carries its exit code (the docker CLI exits with it).
    pub fn error(&self, e: &BuildError) {
        match &e.failed_run {
            Some((command, code)) => {
                let message = format!("The command '{command}' returned a non-zero code: {code}");
                self.send(json!({
                    "errorDetail": {"code": code, "message": message},
                    "error": message,
                }));
            }
            None => self.send(json!({
                "errorDetail": {"message": e.message},
                "error": e.message,
            })),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<W: Write + Send> Progress for ClassicStream<W> {
    fn event(&self, e: Event) {
        match e {
            Event::Start {
                step: Some(s), id, ..
            } => {
                self.stream(format!("Step {}/{} : {}\n", s.number, s.total, s.text));
                if s.text.starts_with("RUN ") {
                    self.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(id);
                }
            }
            Event::Cached { id } => {
                self.unpend(id);
                self.stream(" ---> Using cache\n".into());
            }
            Event::Log { id, data, .. } => {
                self.running(id);
                self.stream(String::from_utf8_lossy(&data).into_owned());
            }
            Event::Done { id, .. } | Event::Error { id, .. } => self.running(id),
            Event::Warning { message } => self.stream(format!("{message}\n")),
            // dockerd's classic builder has no build checks.
            Event::Check(_) => {}
            Event::Image { id } => {
                let short = id
                    .trim_start_matches("sha256:")
                    .get(..12)
                    .unwrap_or("")
                    .to_string();
                // Docker's order: the builder's aux first, then the backend's line.
                if self.aux {
                    self.send(json!({"aux": {"ID": id}}));
                }
                self.stream(format!("Successfully built {short}\n"));
                let tagged =
                    std::mem::take(&mut *self.tagged.lock().unwrap_or_else(|p| p.into_inner()));
                for t in tagged {
                    self.stream(format!("Successfully tagged {t}\n"));
                }
            }
            Event::Tagged { name } => {
                let shown = name
                    .strip_prefix("docker.io/library/")
                    .or_else(|| name.strip_prefix("docker.io/"))
                    .unwrap_or(&name)
                    .to_string();
                self.tagged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(shown);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::StepInfo;

    #[test]
    fn classic_messages() {
        let s = ClassicStream::new(Vec::new());
        let step = |n, text: &str, config_only| StepInfo {
            number: n,
            total: 3,
            text: text.into(),
            config_only,
        };
        s.event(Event::Start {
            id: 3,
            name: "[1/2] FROM busybox".into(),
            step: Some(step(1, "FROM busybox", false)),
        });
        s.event(Event::Start {
            id: 1 << 40,
            name: "ENV A=1".into(),
            step: Some(step(2, "ENV A=1", true)),
        });
        s.event(Event::Start {
            id: 4,
            name: "[2/2] RUN echo hi".into(),
            step: Some(step(3, "RUN echo hi", false)),
        });
        s.event(Event::Log {
            id: 4,
            stream: 1,
            data: b"hi\n".to_vec(),
        });
        s.event(Event::Start {
            id: 5,
            name: "[2/2] RUN true".into(),
            step: Some(step(3, "RUN true", false)),
        });
        s.event(Event::Cached { id: 5 });
        s.event(Event::Done {
            id: 5,
            elapsed: std::time::Duration::ZERO,
        });
        s.event(Event::Tagged {
            name: "docker.io/library/app:1".into(),
        });
        s.event(Event::Image {
            id: "sha256:0123456789abcdef".into(),
        });
        s.error(&BuildError::new("boom"));
        s.error(&BuildError {
            failed_run: Some(("/bin/sh -c exit 3".into(), 3)),
            ..BuildError::new("process ... exit code: 3")
        });
        let text = String::from_utf8(s.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["stream"], "Step 1/3 : FROM busybox\n");
        assert_eq!(lines[1]["stream"], "Step 2/3 : ENV A=1\n");
        assert_eq!(lines[2]["stream"], "Step 3/3 : RUN echo hi\n");
        assert_eq!(lines[3]["stream"], " ---> Running in 000000000004\n");
        assert_eq!(lines[4]["stream"], "hi\n");
        assert_eq!(lines[5]["stream"], "Step 3/3 : RUN true\n");
        assert_eq!(lines[6]["stream"], " ---> Using cache\n");
        assert_eq!(lines[7]["aux"]["ID"], "sha256:0123456789abcdef");
        assert_eq!(lines[8]["stream"], "Successfully built 0123456789ab\n");
        assert_eq!(lines[9]["stream"], "Successfully tagged app:1\n");
        assert_eq!(lines[10]["error"], "boom");
        assert_eq!(
            lines[11]["error"],
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
        );
        assert_eq!(lines[11]["errorDetail"]["code"], 3);
        assert_eq!(lines.len(), 12);
        let quiet = ClassicStream::new(Vec::new()).without_aux();
        quiet.event(Event::Image {
            id: "sha256:0123456789abcdef".into(),
        });
        assert!(
            !String::from_utf8(quiet.into_inner())
                .unwrap()
                .contains("aux")
        );
    }
}
