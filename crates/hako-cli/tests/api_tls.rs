//! `hako serve -H tcp://... --tlsverify` as dockerd: the stock docker CLI with a client
//! certificate from the CA drives it; a client without one, or with one from another CA,
//! and plain HTTP are turned away (and the server serves on); plain TCP is refused unless
//! asked for on loopback with --insecure; bad TLS options are one clear line.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Hako;
use common::serve::have_docker;

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (install openssl)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA (`NAME-ca.pem`, `NAME-ca-key.pem`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}-ca-key.pem"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    );
}

/// A certificate `OUT.pem` (key `OUT-key.pem`) signed by the CA `CA`, with `ext` lines.
fn leaf(dir: &Path, ca: &str, out: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{out}-key.pem"),
            "-out",
            &format!("{out}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{out}.ext")), ext).expect("ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{out}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca-key.pem"),
            "-CAcreateserial",
            "-extfile",
            &format!("{out}.ext"),
            "-out",
            &format!("{out}.pem"),
        ],
    );
}

const PORT: u16 = 2376;

#[test]
fn the_docker_cli_over_tcp_with_tls_client_verification() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let certs = tempfile::tempdir().expect("cert dir");
    let d = certs.path();
    ca(d, "good");
    ca(d, "rogue");
    leaf(
        d,
        "good",
        "server",
        "localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    leaf(
        d,
        "good",
        "client",
        "client",
        "extendedKeyUsage=clientAuth\n",
    );
    leaf(
        d,
        "rogue",
        "intruder",
        "client",
        "extendedKeyUsage=clientAuth\n",
    );
    let p = |f: &str| d.join(f).to_str().expect("utf-8").to_string();

    // Refused at once, one line each, nothing left listening.
    let plain = format!("tcp://127.0.0.1:{PORT}");
    let wide = format!("tcp://0.0.0.0:{PORT}");
    let e = h.fails(1, &["serve", "-H", &plain]);
    assert!(e.contains("--tlsverify") && e.contains("--insecure"), "{e}");
    let e = h.fails(1, &["serve", "-H", &wide, "--insecure"]);
    assert!(e.contains("without TLS"), "{e}");
    let e = h.fails(
        1,
        &[
            "serve",
            "-H",
            &wide,
            "--tlsverify",
            "--tlscacert",
            &p("good-ca.pem"),
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("missing-key.pem"),
        ],
    );
    assert!(
        e.contains("--tlskey") && e.contains("missing-key.pem"),
        "{e}"
    );
    let e = h.fails(
        1,
        &[
            "serve",
            "-H",
            &wide,
            "--tlsverify",
            "--tlscacert",
            &p("good-ca.pem"),
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("client-key.pem"),
        ],
    );
    assert!(
        e.contains("server.pem"),
        "a key of another certificate: {e}"
    );
    let sock = format!("unix://{}", h.root.path().join("t.sock").display());
    let e = h.fails(
        1,
        &[
            "serve",
            "-H",
            &sock,
            "--tlsverify",
            "--tlscacert",
            &p("good-ca.pem"),
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ],
    );
    assert!(e.contains("tcp://"), "{e}");
    let o = h.run(&["serve", "-H", &wide, "--tlsverify"]);
    assert!(!o.status.success(), "--tlsverify without its files");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tlscacert"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Any address with TLS: 0.0.0.0 in the test's network namespace.
    let log = h.root.path().join("serve.log");
    let mut server = h
        .cmd(&[
            "serve",
            "-H",
            &wide,
            "--tlsverify",
            "--tlscacert",
            &p("good-ca.pem"),
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn hako serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while h
        .net
        .run(|| std::net::TcpStream::connect(("127.0.0.1", PORT)))
        .is_err()
    {
        assert!(Instant::now() < deadline, "hako serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = tempfile::tempdir().expect("docker config");
    let docker = |tls: &[String], args: &[&str]| -> Output {
        h.host("docker")
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .args(tls)
            .args(["-H", &plain])
            .args(args)
            .output()
            .expect("run docker")
    };
    let good: Vec<String> = [
        "--tlsverify".into(),
        "--tlscacert".into(),
        p("good-ca.pem"),
        "--tlscert".into(),
        p("client.pem"),
        "--tlskey".into(),
        p("client-key.pem"),
    ]
    .to_vec();
    let ok = |args: &[&str]| -> String {
        let o = docker(&good, args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}\nserver:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        String::from_utf8(o.stdout).expect("utf-8")
    };
    assert_eq!(
        ok(&["version", "--format", "{{.Server.APIVersion}}"]).trim(),
        hako_api::API_VERSION
    );
    assert_eq!(
        ok(&["run", "--rm", "busybox", "echo", "over tls"]),
        "over tls\n"
    );
    // A hijacked stream (attach through `run` without -d) over TLS, with stdin.
    let mut child = h
        .host("docker")
        .env("DOCKER_CONFIG", config.path())
        .env_remove("DOCKER_HOST")
        .args(&good)
        .args([
            "-H", &plain, "run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker run -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"shout\n")
        .expect("write stdin");
    let o = child.wait_with_output().expect("docker run -i");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "SHOUT\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Turned away: no client certificate, one from another CA, plain HTTP.
    let no_cert = docker(
        &["--tls".into(), "--tlscacert".into(), p("good-ca.pem")],
        &["ps"],
    );
    assert!(
        !no_cert.status.success(),
        "a client without a certificate got in"
    );
    let rogue = docker(
        &[
            "--tlsverify".into(),
            "--tlscacert".into(),
            p("good-ca.pem"),
            "--tlscert".into(),
            p("intruder.pem"),
            "--tlskey".into(),
            p("intruder-key.pem"),
        ],
        &["ps"],
    );
    assert!(
        !rogue.status.success(),
        "a certificate of another CA got in"
    );
    let answer = h.net.run(|| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", PORT)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        s.write_all(b"GET /_ping HTTP/1.1\r\nHost: hako\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    });
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(ok(&["ps", "-aq"]), "", "the server serves on");

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(server.wait().expect("wait").success());
    assert!(
        h.net
            .run(|| std::net::TcpStream::connect(("127.0.0.1", PORT)))
            .is_err(),
        "still listening after SIGTERM"
    );
    h.finish(&[]);
}
