//! Docker's other clients against `hako serve`: docker-compose v1 (Debian's 1.29, Python,
//! the Engine API through docker-py 5) bringing a two-service project up and down, and
//! docker-py 7.x (PyPI, in the fixtures venv `scripts/lib.sh ensure_docker_py` makes).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::Hako;
use common::serve::{Server, have_docker};

/// A client program, or None (a skip off CI; a failure under `CI=true`).
fn need(program: &str, what: &str) -> Option<PathBuf> {
    let p = PathBuf::from(program);
    let found = if p.is_absolute() {
        p.exists().then_some(p)
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|c| c.exists())
        })
    };
    if found.is_none() {
        assert!(
            !hako_test_support::in_ci(),
            "{program} is needed: {what} (scripts/test.sh installs it)"
        );
        eprintln!("SKIP: no {program}");
    }
    found
}

fn output(s: &Server, program: &std::path::Path, args: &[&str], dir: &std::path::Path) -> Output {
    let mut child = s
        .client(program.to_str().expect("utf-8"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} {args:?} hung", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn ok(s: &Server, program: &std::path::Path, args: &[&str], dir: &std::path::Path) -> String {
    let o = output(s, program, args, dir);
    assert!(
        o.status.success(),
        "{} {args:?} failed ({:?}): {}{}",
        program.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One HTTP GET from the test's network "host" (where the published port is).
fn http_get(h: &Hako, port: u16) -> String {
    h.net.run(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| {
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                c.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut out = String::new();
                c.read_to_string(&mut out)?;
                Ok(out)
            });
            match got {
                Ok(body) if body.contains("200") => return body,
                other => {
                    assert!(Instant::now() < deadline, "GET :{port}: {other:?}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })
}

const COMPOSE: &str = r#"
services:
  web:
    image: busybox
    command:
      - sh
      - -c
      - |
        trap 'exit 0' TERM
        echo "web-up $$GREETING"
        mkdir -p /www
        echo "hello from $$GREETING" > /www/index.html
        cp /www/index.html /data/seen
        httpd -f -p 8080 -h /www &
        wait
    environment:
      GREETING: compose
    ports:
      - "18080:8080"
    volumes:
      - data:/data
    networks:
      - back
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo db-up; touch /tmp/ready; sleep 1000 & wait"]
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: 1s
      timeout: 5s
      retries: 30
    networks:
      back:
        aliases: [database]
networks:
  back:
    driver: bridge
    labels:
      made.by: compose-test
volumes:
  data:
"#;

#[test]
fn docker_compose_brings_a_project_up_and_down() {
    need_root!();
    if !have_docker() {
        return;
    }
    let Some(compose) = need("docker-compose", "Debian's docker-compose") else {
        return;
    };
    let h = Hako::new();
    let s = Server::start(&h);
    let dir = tempfile::tempdir().expect("project dir");
    std::fs::write(dir.path().join("docker-compose.yml"), COMPOSE).expect("compose file");
    let d = dir.path();
    let up = output(&s, &compose, &["-p", "hkc", "up", "-d"], d);
    assert!(up.status.success(), "{up:?}");

    // ps: both up, the port published; the same containers in `hako ps`.
    let ps = ok(&s, &compose, &["-p", "hkc", "ps"], d);
    assert!(
        ps.contains("hkc_web_1") && ps.contains("hkc_db_1") && ps.contains("18080->8080/tcp"),
        "{ps}"
    );
    assert_eq!(ps.matches(" Up ").count(), 2, "{ps}");
    let ids = h.ok(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=hkc",
    ]);
    assert_eq!(ids.lines().count(), 2, "{ids}");
    let health = s.ok(&[
        "inspect",
        "hkc_db_1",
        "--format",
        "{{.State.Health.Status}}",
    ]);
    assert_eq!(health.trim(), "healthy");

    // The published port, the environment, the volume, the user network's names.
    assert!(http_get(&h, 18080).contains("hello from compose"));
    let seen = ok(
        &s,
        &compose,
        &["-p", "hkc", "exec", "-T", "web", "cat", "/data/seen"],
        d,
    );
    assert_eq!(seen.trim(), "hello from compose");
    ok(
        &s,
        &compose,
        &[
            "-p", "hkc", "exec", "-T", "web", "ping", "-c", "1", "-W", "5", "database",
        ],
        d,
    );
    ok(
        &s,
        &compose,
        &[
            "-p", "hkc", "exec", "-T", "db", "ping", "-c", "1", "-W", "5", "web",
        ],
        d,
    );
    let logs = ok(&s, &compose, &["-p", "hkc", "logs", "--no-color"], d);
    assert!(
        logs.contains("web_1  | web-up compose") && logs.contains("db_1   | db-up"),
        "{logs}"
    );
    let nets = s.ok(&[
        "network",
        "ls",
        "--filter",
        "label=made.by=compose-test",
        "-q",
    ]);
    assert_eq!(nets.lines().count(), 1, "{nets}");

    // down -v: nothing of the project is left (containers, network, volume, and in the
    // leak check: mounts, cgroups, interfaces, nft elements, processes).
    ok(&s, &compose, &["-p", "hkc", "down", "-v", "-t", "30"], d);
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(
        s.ok(&["network", "ls", "--filter", "type=custom", "-q"])
            .trim(),
        ""
    );
    assert_eq!(s.ok(&["volume", "ls", "-q"]).trim(), "");
    drop(s);
    h.finish(&[]);
}

/// What docker-py does, checked by the script itself (an assert fails it).
const DOCKER_PY: &str = r#"
import sys, docker
c = docker.from_env(timeout=60)
assert c.ping()
v = c.version()
assert v["ApiVersion"] == "1.50", v
assert any("busybox:latest" in i.tags for i in c.images.list()), c.images.list()

# run (attached, removed): the output comes back
out = c.containers.run("busybox", ["sh", "-c", "echo out-line; echo err-line >&2"], remove=True, stderr=True)
assert b"out-line" in out and b"err-line" in out, out

# run detached with a name, env and labels; exec; logs; wait; inspect
ct = c.containers.run("busybox", ["sh", "-c", "trap 'exit 3' TERM; echo started $X; sleep 1000 & wait"],
                      detach=True, name="pyc", environment={"X": "yes"}, labels={"made": "py"})
for _ in range(200):
    if b"started yes" in ct.logs():
        break
    import time; time.sleep(0.05)
assert ct.logs() == b"started yes\n", ct.logs()
code, out = ct.exec_run(["sh", "-c", "echo $X; id -u"])
assert code == 0 and out == b"yes\n0\n", (code, out)
code, out = ct.exec_run("false")
assert code == 1, code
ct.reload()
assert ct.status == "running" and ct.labels == {"made": "py"}, (ct.status, ct.labels)
assert [x.name for x in c.containers.list(filters={"label": "made=py"})] == ["pyc"]
ct.stop(timeout=30)
assert ct.wait()["StatusCode"] == 3
ct.remove()
assert c.containers.list(all=True) == []

# images: inspect, tag, history, remove
img = c.images.get("busybox")
assert img.tag("pybox", "v1")
assert "pybox:v1" in c.images.get("pybox:v1").tags
assert len(img.history()) >= 1
c.images.remove("pybox:v1")
try:
    c.images.get("pybox:v1")
    sys.exit("pybox:v1 still there")
except docker.errors.ImageNotFound:
    pass

# a volume and a network
vol = c.volumes.create("pyvol")
net = c.networks.create("pynet", labels={"made": "py"})
ct = c.containers.run("busybox", ["sh", "-c", "echo kept > /v/f"], volumes={"pyvol": {"bind": "/v"}},
                      network="pynet", detach=True)
assert ct.wait()["StatusCode"] == 0
ct.remove()
assert c.containers.run("busybox", ["cat", "/v/f"], volumes=["pyvol:/v"], remove=True) == b"kept\n"
assert [n.name for n in c.networks.list(filters={"label": "made=py"})] == ["pynet"]
net.remove()
vol.remove()
try:
    c.containers.get("nope")
    sys.exit("nope found")
except docker.errors.NotFound:
    pass
print("docker-py ok")
"#;

#[test]
fn docker_py_runs_execs_logs_and_images() {
    need_root!();
    let python = hako_test_support::fixtures_dir().join("docker-py/bin/python");
    let Some(python) = need(
        python.to_str().expect("utf-8"),
        "docker-py 7.x in a venv (scripts/lib.sh ensure_docker_py)",
    ) else {
        return;
    };
    let h = Hako::new();
    let s = Server::start(&h);
    let dir = tempfile::tempdir().expect("script dir");
    std::fs::write(dir.path().join("t.py"), DOCKER_PY).expect("script");
    let out = ok(&s, &python, &["t.py"], dir.path());
    assert_eq!(out.trim(), "docker-py ok");
    drop(s);
    h.finish(&[]);
}
