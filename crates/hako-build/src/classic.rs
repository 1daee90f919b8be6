//! Build progress as the Docker Engine API's `POST /build` streams it to a classic client
//! (`DOCKER_BUILDKIT=0 docker build`, docker-py's `images.build`, compose): one JSON object
//! per line, `{"stream": "Step 2/5 : RUN make\n"}` ... `{"aux": {"ID": "sha256:..."}}`,
//! and `{"errorDetail": {"message": ...}, "error": ...}` when the build fails.

use std::io::Write;
use std::sync::Mutex;

use serde_json::json;

use crate::progress::{Event, Progress};

/// Writes classic build messages to `out` (each line flushed).
#[derive(Debug)]
pub struct ClassicStream<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> ClassicStream<W> {
    /// Messages go to `out`.
    pub fn new(out: W) -> ClassicStream<W> {
        ClassicStream {
            out: Mutex::new(out),
        }
    }

    fn send(&self, v: serde_json::Value) {
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "{v}");
            let _ = o.flush();
        }
    }

    fn stream(&self, text: String) {
        self.send(json!({ "stream": text }));
    }

    /// The final error message (after a failed build).
    pub fn error(&self, message: &str) {
        self.send(json!({"errorDetail": {"message": message}, "error": message}));
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
                if !s.config_only {
                    self.stream(format!(" ---> Running in {:012x}\n", id));
                }
            }
            Event::Cached { .. } => self.stream(" ---> Using cache\n".into()),
            Event::Log { data, .. } => self.stream(String::from_utf8_lossy(&data).into_owned()),
            Event::Warning { message } => self.stream(format!("{message}\n")),
            Event::Image { id } => {
                let short = id
                    .trim_start_matches("sha256:")
                    .get(..12)
                    .unwrap_or("")
                    .to_string();
                self.stream(format!("Successfully built {short}\n"));
                self.send(json!({"aux": {"ID": id}}));
            }
            Event::Tagged { name } => {
                let shown = name
                    .strip_prefix("docker.io/library/")
                    .or_else(|| name.strip_prefix("docker.io/"))
                    .unwrap_or(&name)
                    .to_string();
                self.stream(format!("Successfully tagged {shown}\n"));
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
        s.event(Event::Image {
            id: "sha256:0123456789abcdef".into(),
        });
        s.event(Event::Tagged {
            name: "docker.io/library/app:1".into(),
        });
        s.error("boom");
        let text = String::from_utf8(s.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["stream"], "Step 1/3 : FROM busybox\n");
        assert_eq!(lines[2]["stream"], "Step 2/3 : ENV A=1\n");
        assert_eq!(lines[3]["stream"], "Step 3/3 : RUN echo hi\n");
        assert_eq!(lines[5]["stream"], "hi\n");
        assert_eq!(lines[6]["stream"], "Successfully built 0123456789ab\n");
        assert_eq!(lines[7]["aux"]["ID"], "sha256:0123456789abcdef");
        assert_eq!(lines[8]["stream"], "Successfully tagged app:1\n");
        assert_eq!(lines[9]["error"], "boom");
    }
}
