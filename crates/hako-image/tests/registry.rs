//! Pull and push against Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, skopeo
//! interop, basic auth with htpasswd, a fake registry for bearer tokens, a corrupted blob
//! and a foreign-architecture index, and a `kill -9` in the middle of a pull.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hako_image::registry::{self, ProgressEvent, ProgressStatus};
use hako_image::{Credentials, Digest, Error, ImageStore, ImportOptions, PullOptions, PushOptions};

mod common;

use common::Root;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry serve` child, killed on drop.
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Option<Registry> {
        if !Path::new("/usr/bin/docker-registry").exists() {
            // Under CI the prerequisite is installed by scripts/test.sh: missing is a failure.
            assert!(
                !matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")),
                "docker-registry not installed (CI=true)"
            );
            eprintln!("docker-registry not installed; skipping");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = htpasswd {
            let hash = bcrypt::hash_with_result(pass, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoA);
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hako-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let reg = Registry { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(reg)
    }
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rootfs_tar(extra: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("bin/", b"", tar::EntryType::Directory, 0o755);
    add("bin/sh", b"#!fake shell\n", tar::EntryType::Regular, 0o755);
    add("etc/", b"", tar::EntryType::Directory, 0o755);
    add("etc/extra", extra, tar::EntryType::Regular, 0o644);
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn import(store: &ImageStore, tag: &str, extra: &[u8]) -> Digest {
    let opts = ImportOptions {
        reference: Some(tag.into()),
        changes: vec!["ENV A=1".into(), "CMD [\"/bin/sh\"]".into()],
        ..Default::default()
    };
    store
        .import(&mut Cursor::new(gz(&rootfs_tar(extra))), &opts)
        .unwrap()
}

fn read_extra(store: &ImageStore, image: &str, ctr: &str) -> Vec<u8> {
    let m = store.prepare_rootfs(image, ctr).unwrap();
    let data = std::fs::read(m.rootfs.join("etc/extra")).unwrap();
    store.release_rootfs(ctr).unwrap();
    data
}

/// Collects progress events.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<ProgressEvent>>>);

impl Events {
    fn statuses(&self) -> Vec<ProgressStatus> {
        self.0.lock().unwrap().iter().map(|e| e.status).collect()
    }
    fn push(&self, e: ProgressEvent) {
        self.0.lock().unwrap().push(e);
    }
}

fn blob_files(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn push_then_pull_into_another_store() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let a = Root::new("hako-test-registry-");
    let src = ImageStore::open(a.path()).unwrap();
    let name = format!("{}/hako/app:1", reg.host());
    let id = import(&src, &name, b"round trip");

    let pushed_events = Events::default();
    let pe = pushed_events.clone();
    let show = move |e: ProgressEvent| pe.push(e);
    let pushed = src
        .push(
            &name,
            &PushOptions {
                progress: Some(&show),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(pushed.tag, "1");
    assert!(pushed_events.statuses().contains(&ProgressStatus::Pushed));
    let repo_digest = format!("{}/hako/app@{}", reg.host(), pushed.digest);
    assert_eq!(
        src.inspect(&name).unwrap()["RepoDigests"],
        serde_json::json!([repo_digest])
    );
    // Chunked upload of the same image under another tag: blobs exist already.
    let name2 = format!("{}/hako/app:chunked", reg.host());
    src.tag(&name, &name2).unwrap();
    let again = src
        .push(
            &name2,
            &PushOptions {
                chunk_size: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.digest, pushed.digest);
    // A new image pushed with chunks into a new repository really uploads in chunks.
    let chunked_name = format!("{}/hako/chunked:1", reg.host());
    let chunked_id = import(&src, &chunked_name, &vec![7u8; 300_000]);
    src.push(
        &chunked_name,
        &PushOptions {
            chunk_size: Some(64 * 1024),
            ..Default::default()
        },
    )
    .unwrap();
    let tags = registry::list_tags(&format!("{}/hako/app", reg.host()), false, None).unwrap();
    let mut tags = tags;
    tags.sort();
    assert_eq!(tags, vec!["1".to_string(), "chunked".to_string()]);

    // Pull into a second store.
    let b = Root::new("hako-test-registry-");
    let dst = ImageStore::open(b.path()).unwrap();
    let events = Events::default();
    let ev = events.clone();
    let show = move |e: ProgressEvent| ev.push(e);
    let pulled = dst
        .pull(
            &name,
            &PullOptions {
                progress: Some(&show),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(pulled.id, id);
    assert_eq!(pulled.digest, pushed.digest);
    assert!(pulled.new);
    let s = events.statuses();
    for want in [
        ProgressStatus::PullingFsLayer,
        ProgressStatus::Downloading,
        ProgressStatus::VerifyingChecksum,
        ProgressStatus::DownloadComplete,
        ProgressStatus::Extracting,
        ProgressStatus::PullComplete,
    ] {
        assert!(s.contains(&want), "{want} missing from {s:?}");
    }
    let inspect = dst.inspect(&name).unwrap();
    assert_eq!(inspect["Id"], id.as_str());
    assert_eq!(inspect["RepoTags"], serde_json::json!([name]));
    assert_eq!(inspect["RepoDigests"], serde_json::json!([repo_digest]));
    assert_eq!(inspect["RootFS"], src.inspect(&name).unwrap()["RootFS"]);
    assert_eq!(read_extra(&dst, &name, "hako-reg-1"), b"round trip");
    // Pulling again downloads nothing; by digest finds the same image.
    let events2 = Events::default();
    let ev2 = events2.clone();
    let show2 = move |e: ProgressEvent| ev2.push(e);
    let second = dst
        .pull(
            &name,
            &PullOptions {
                progress: Some(&show2),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!second.new);
    assert_eq!(events2.statuses(), vec![ProgressStatus::AlreadyExists]);
    let by_digest = dst.pull(&repo_digest, &PullOptions::default()).unwrap();
    assert_eq!(by_digest.id, id);
    assert_eq!(dst.resolve(&repo_digest).unwrap(), id);
    // Pushing from the pulled store: the registry already has every blob, same digest.
    let re = Events::default();
    let re2 = re.clone();
    let show3 = move |e: ProgressEvent| re2.push(e);
    let repushed = dst
        .push(
            &name,
            &PushOptions {
                progress: Some(&show3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(repushed.digest, pushed.digest);
    assert!(re.statuses().contains(&ProgressStatus::LayerAlreadyExists));
    // The chunked image pulls back intact.
    let pulled_chunked = dst.pull(&chunked_name, &PullOptions::default()).unwrap();
    assert_eq!(pulled_chunked.id, chunked_id);
    assert_eq!(
        read_extra(&dst, &chunked_name, "hako-reg-2"),
        vec![7u8; 300_000]
    );

    // Unknown tag and unknown repository: "manifest unknown", nothing added.
    let before = dst.list().unwrap().len();
    for missing in [
        format!("{}/hako/app:nope", reg.host()),
        format!("{}/hako/nothing:1", reg.host()),
    ] {
        let e = dst.pull(&missing, &PullOptions::default()).unwrap_err();
        assert!(
            matches!(e, Error::Registry { status: 404, .. }),
            "{missing}: {e:?}"
        );
        assert!(e.to_string().starts_with("manifest unknown: "), "{e}");
        eprintln!("{e}");
    }
    assert_eq!(dst.list().unwrap().len(), before);
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    let a = Root::new("hako-test-registry-");
    let store = ImageStore::open(a.path()).unwrap();
    let port = free_port();
    let started = Instant::now();
    let e = store
        .pull(&format!("127.0.0.1:{port}/x/y:1"), &PullOptions::default())
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    let text = e.to_string();
    eprintln!("{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(store.list().unwrap().is_empty());
    assert!(blob_files(a.path()).is_empty());
    let e = registry::login(
        &format!("127.0.0.1:{port}"),
        &Credentials {
            username: "u".into(),
            password: "p".into(),
        },
        &a.path().join("config.json"),
        false,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(!a.path().join("config.json").exists());
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn skopeo_interop() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        // scripts/test.sh installs skopeo: under CI missing is a failure.
        assert!(
            !matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")),
            "skopeo not installed (CI=true)"
        );
        eprintln!("skopeo not installed; skipping");
        return;
    }
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let a = Root::new("hako-test-registry-");
    let src = ImageStore::open(a.path()).unwrap();
    let id = import(&src, "hako-test/sk:1", b"via skopeo");
    let saved = a.path().join("saved.tar");
    src.save(
        &["hako-test/sk:1"],
        &mut std::fs::File::create(&saved).unwrap(),
    )
    .unwrap();
    // skopeo pushes (Docker schema2, gzip layers); we pull.
    let target = format!("{}/sk/x:y", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", saved.display()),
        &format!("docker://{target}"),
    ]);
    let b = Root::new("hako-test-registry-");
    let dst = ImageStore::open(b.path()).unwrap();
    let pulled = dst.pull(&target, &PullOptions::default()).unwrap();
    assert_eq!(pulled.id, id);
    assert_eq!(read_extra(&dst, &target, "hako-sk-1"), b"via skopeo");
    // We push; skopeo reads it.
    let ours = format!("{}/hako/ours:2", reg.host());
    src.tag("hako-test/sk:1", &ours).unwrap();
    let pushed = src.push(&ours, &PushOptions::default()).unwrap();
    let raw = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{ours}")]);
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["Digest"], pushed.digest.as_str());
    assert_eq!(v["Env"][0], "A=1");
    let cfg = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{ours}"),
    ]);
    assert_eq!(
        Digest::parse(&format!("sha256:{}", sha256_hex(&cfg))).unwrap(),
        id
    );
    // Re-pushing the image pulled from skopeo's push keeps skopeo's manifest digest.
    let again = format!("{}/sk/x:again", reg.host());
    dst.tag(&target, &again).unwrap();
    assert_eq!(
        dst.push(&again, &PushOptions::default()).unwrap().digest,
        pulled.digest
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn basic_auth_with_htpasswd() {
    let Some(reg) = Registry::start(Some(("hako", "s3cret"))) else {
        return;
    };
    let a = Root::new("hako-test-registry-");
    let store = ImageStore::open(a.path()).unwrap();
    let name = format!("{}/private/app:1", reg.host());
    let id = import(&store, &name, b"secret");
    let config = a.path().join("docker/config.json");

    // Anonymous and wrong password: 401, nothing written.
    let e = store.push(&name, &PushOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");
    assert!(e.to_string().starts_with("unauthorized"), "{e}");
    let wrong = Credentials {
        username: "hako".into(),
        password: "wrong".into(),
    };
    let e = registry::login(&reg.host(), &wrong, &config, false).unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");
    assert!(!config.exists());
    let e = store
        .push(
            &name,
            &PushOptions {
                credentials: Some(wrong),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");

    // Right password: login stores Docker's config.json; push and pull use it.
    let right = Credentials {
        username: "hako".into(),
        password: "s3cret".into(),
    };
    registry::login(&reg.host(), &right, &config, false).unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(cfg["auths"][reg.host()]["auth"], "aGFrbzpzM2NyZXQ="); // hako:s3cret
    let creds = registry::load_credentials(&config, &reg.host()).unwrap();
    assert_eq!(creds.as_ref(), Some(&right));
    store
        .push(
            &name,
            &PushOptions {
                credentials: creds.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let b = Root::new("hako-test-registry-");
    let other = ImageStore::open(b.path()).unwrap();
    let e = other.pull(&name, &PullOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");
    assert!(other.list().unwrap().is_empty());
    let pulled = other
        .pull(
            &name,
            &PullOptions {
                credentials: creds,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(pulled.id, id);
    assert!(registry::logout(&reg.host(), &config).unwrap());
    assert_eq!(
        registry::load_credentials(&config, &reg.host()).unwrap(),
        None
    );
}

/// A tiny registry that serves one image, with a bearer-token endpoint, an index for
/// another architecture only, and optionally a corrupted layer.
struct FakeRegistry {
    port: u16,
    seen_tokens: Arc<Mutex<Vec<String>>>,
}

struct FakeImage {
    manifest: Vec<u8>,
    index: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
    id: Digest,
}

fn fake_image(corrupt: bool) -> FakeImage {
    let tar = rootfs_tar(b"fake registry");
    let layer = gz(&tar);
    let host = hako_image::Platform::host();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host.architecture, "os": host.os,
        "config": {"Env": ["B=2"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
    }))
    .unwrap();
    let config_d = format!("sha256:{}", sha256_hex(&config));
    let layer_d = format!("sha256:{}", sha256_hex(&layer));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_d = format!("sha256:{}", sha256_hex(&manifest));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_d,
                       "size": manifest.len(), "platform": {"architecture": "s390x", "os": "linux"}}],
    }))
    .unwrap();
    let mut served_layer = layer.clone();
    if corrupt {
        let mid = served_layer.len() / 2;
        served_layer[mid] ^= 0xff;
    }
    FakeImage {
        blobs: vec![
            (config_d.clone(), config),
            (layer_d, served_layer),
            (manifest_d, manifest.clone()),
        ],
        manifest,
        index,
        id: Digest::parse(&config_d).unwrap(),
    }
}

impl FakeRegistry {
    fn start(img: FakeImage, bearer: bool) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen_tokens = Arc::new(Mutex::new(Vec::new()));
        let seen = seen_tokens.clone();
        let img = Arc::new(img);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let img = img.clone();
                let seen = seen.clone();
                std::thread::spawn(move || serve(conn, &img, bearer, port, &seen));
            }
        });
        FakeRegistry { port, seen_tokens }
    }
}

fn serve(conn: TcpStream, img: &FakeImage, bearer: bool, port: u16, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let mut out = conn;
    let mut reply = |status: &str, extra: &[(&str, String)], body: &[u8]| {
        let mut head = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = out.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = out.write_all(body);
        }
    };
    if path == "/token" {
        // user "tok" / password "en" → base64 "dG9rOmVu".
        if header("authorization").as_deref() == Some("Basic dG9rOmVu") {
            assert!(
                target.contains("scope=repository%3Afake%2Fimg%3Apull")
                    || target.contains("scope=repository:fake/img:pull"),
                "{target}"
            );
            reply("200 OK", &[], br#"{"token":"t0ken"}"#);
        } else {
            reply(
                "401 Unauthorized",
                &[],
                br#"{"details":"incorrect username or password"}"#,
            );
        }
        return;
    }
    if bearer {
        let auth = header("authorization");
        if auth.as_deref() != Some("Bearer t0ken") {
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake",scope="repository:fake/img:pull""#
            );
            reply(
                "401 Unauthorized",
                &[("WWW-Authenticate", challenge)],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            return;
        }
        seen.lock().unwrap().push(path.to_string());
    }
    let json = |t: &str| ("Content-Type", t.to_string());
    match path {
        "/v2/" => reply("200 OK", &[], b"{}"),
        "/v2/fake/img/manifests/latest" => reply(
            "200 OK",
            &[json("application/vnd.oci.image.manifest.v1+json")],
            &img.manifest,
        ),
        "/v2/fake/img/manifests/multi" => reply(
            "200 OK",
            &[json("application/vnd.oci.image.index.v1+json")],
            &img.index,
        ),
        p => {
            let d = p.rsplit('/').next().unwrap_or("");
            match img.blobs.iter().find(|(digest, _)| digest == d) {
                Some((_, data)) => reply("200 OK", &[], data),
                None => reply(
                    "404 Not Found",
                    &[],
                    br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                ),
            }
        }
    }
}

#[test]
fn bearer_token_auth() {
    let img = fake_image(false);
    let id = img.id.clone();
    let fake = FakeRegistry::start(img, true);
    let a = Root::new("hako-test-registry-");
    let store = ImageStore::open(a.path()).unwrap();
    let name = format!("127.0.0.1:{}/fake/img", fake.port);
    let e = store.pull(&name, &PullOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");
    let e = store
        .pull(
            &name,
            &PullOptions {
                credentials: Some(Credentials {
                    username: "tok".into(),
                    password: "bad".into(),
                }),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");
    assert!(store.list().unwrap().is_empty());
    let pulled = store
        .pull(
            &name,
            &PullOptions {
                credentials: Some(Credentials {
                    username: "tok".into(),
                    password: "en".into(),
                }),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(pulled.id, id);
    assert_eq!(store.inspect(&name).unwrap()["Config"]["Env"][0], "B=2");
    let seen = fake.seen_tokens.lock().unwrap().clone();
    assert!(seen.iter().any(|p| p.contains("/blobs/")), "{seen:?}");
}

#[test]
fn corrupted_blob_and_foreign_architecture() {
    let img = fake_image(true);
    let fake = FakeRegistry::start(img, false);
    let a = Root::new("hako-test-registry-");
    let store = ImageStore::open(a.path()).unwrap();
    let e = store
        .pull(
            &format!("127.0.0.1:{}/fake/img:latest", fake.port),
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    eprintln!("{e}");
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(store.list().unwrap().is_empty());
    // Only the (verified) config made it into the blob store; no partial file remains.
    assert!(blob_files(a.path()).len() <= 1);
    assert_eq!(
        std::fs::read_dir(a.path().join("blobs/partial"))
            .unwrap()
            .count(),
        0
    );
    drop(store);
    let reopened = ImageStore::open(a.path()).unwrap();
    assert!(
        blob_files(a.path()).is_empty(),
        "unreferenced config collected at open"
    );

    let e = reopened
        .pull(
            &format!("127.0.0.1:{}/fake/img:multi", fake.port),
            &PullOptions::default(),
        )
        .unwrap_err();
    let text = e.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&format!(
            "no matching manifest for {} in the manifest list entries",
            hako_image::Platform::host()
        )),
        "{text}"
    );
    assert!(text.contains("linux/s390x"), "{text}");
    assert!(reopened.list().unwrap().is_empty());
}

#[test]
fn corrupted_blob_in_real_registry_storage() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let a = Root::new("hako-test-registry-");
    let src = ImageStore::open(a.path()).unwrap();
    let name = format!("{}/hako/corrupt:1", reg.host());
    import(&src, &name, &noise(100_000));
    src.push(&name, &PushOptions::default()).unwrap();
    // Flip a byte of every layer-sized blob in the registry's storage (same length).
    let mut corrupted = 0;
    for entry in walk(&reg.data()) {
        if entry.file_name().is_some_and(|n| n == "data") {
            let mut data = std::fs::read(&entry).unwrap();
            if data.len() > 1000 {
                let mid = data.len() / 2;
                data[mid] ^= 0xff;
                std::fs::write(&entry, data).unwrap();
                corrupted += 1;
            }
        }
    }
    assert_eq!(corrupted, 1);
    let b = Root::new("hako-test-registry-");
    let dst = ImageStore::open(b.path()).unwrap();
    let e = dst.pull(&name, &PullOptions::default()).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    assert!(dst.list().unwrap().is_empty());
}

/// `n` bytes gzip cannot shrink (xorshift).
fn noise(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x.to_le_bytes()[0];
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The child half of `kill_9_mid_pull`: pulls, and stalls forever once 1 MiB of the big
/// layer has arrived (after writing a marker), so the parent kills it mid-download.
#[test]
#[ignore = "helper process for kill_9_mid_pull"]
fn pull_child() {
    let (Ok(root), Ok(name)) = (
        std::env::var("HAKO_TEST_PULL_ROOT"),
        std::env::var("HAKO_TEST_PULL_NAME"),
    ) else {
        return;
    };
    let marker = PathBuf::from(format!("{root}.marker"));
    let store = ImageStore::open(&root).unwrap();
    let stall = move |e: ProgressEvent| {
        if e.status == ProgressStatus::Downloading && e.current >= 1 << 20 {
            let _ = std::fs::write(&marker, e.current.to_string());
            std::thread::sleep(Duration::from_secs(600));
        }
    };
    let _ = store.pull(
        &name,
        &PullOptions {
            progress: Some(&stall),
            ..Default::default()
        },
    );
}

#[test]
fn kill_9_mid_pull() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let src_root = Root::new("hako-test-registry-");
    let src = ImageStore::open(src_root.path()).unwrap();
    let big = noise(8 << 20);
    let name = format!("{}/hako/big:1", reg.host());
    let id = import(&src, &name, &big);
    src.push(&name, &PushOptions::default()).unwrap();

    let dst = Root::new("hako-test-registry-");
    drop(ImageStore::open(dst.path()).unwrap());
    let marker = PathBuf::from(format!("{}.marker", dst.path().display()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "pull_child", "--nocapture"])
        .env("HAKO_TEST_PULL_ROOT", dst.path())
        .env("HAKO_TEST_PULL_NAME", &name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "child never got 1 MiB in");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(!child.wait().unwrap().success());
    let _ = std::fs::remove_file(&marker);

    // Consistent: nothing listed, no unreferenced blob or layer dir after open; the
    // partial download stays for the next pull.
    let store = ImageStore::open(dst.path()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(
        blob_files(dst.path()).is_empty(),
        "{:?}",
        blob_files(dst.path())
    );
    let partial: Vec<_> = std::fs::read_dir(dst.path().join("blobs/partial"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(partial.len(), 1);
    assert!(partial[0] >= 1 << 20, "{partial:?}");
    for sub in ["overlay2", "vfs/dir"] {
        if let Ok(rd) = std::fs::read_dir(dst.path().join(sub)) {
            let dirs: Vec<_> = rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "l")
                .collect();
            assert!(dirs.is_empty(), "{sub}: {dirs:?}");
        }
    }

    // The second pull resumes (its first Downloading event starts past 0) and completes.
    let events = Events::default();
    let ev = events.clone();
    let show = move |e: ProgressEvent| ev.push(e);
    let pulled = store
        .pull(
            &name,
            &PullOptions {
                progress: Some(&show),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(pulled.id, id);
    let first = events
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.status == ProgressStatus::Downloading && e.total > 1 << 20)
        .cloned()
        .unwrap();
    assert!(first.current >= 1 << 20, "did not resume: {first:?}");
    assert_eq!(read_extra(&store, &name, "hako-kill-1"), big);
    assert_eq!(
        std::fs::read_dir(dst.path().join("blobs/partial"))
            .unwrap()
            .count(),
        0
    );
}

/// Uploads `data` into `repo` of a real registry (monolithic), as another tool would.
fn upload(host: &str, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let resp = ureq::post(&format!("http://{host}/v2/{repo}/blobs/uploads/"))
        .send_bytes(&[])
        .unwrap();
    let location = resp.header("location").unwrap().to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{host}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    ureq::put(&format!("{url}{sep}digest={digest}"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(data)
        .unwrap();
    digest
}

/// Bytes of the files in a store's blob store.
fn blob_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn statuses_of(store: &ImageStore, name: &str) -> (hako_image::PushReport, Vec<ProgressStatus>) {
    let events = Events::default();
    let ev = events.clone();
    let show = move |e: ProgressEvent| ev.push(e);
    let report = store
        .push(
            name,
            &PushOptions {
                progress: Some(&show),
                ..Default::default()
            },
        )
        .unwrap();
    (report, events.statuses())
}

/// Layers keep no blob once unpacked; push still gives the registry what it needs. A
/// layer that came compressed by another tool is pushed under the digest it came with
/// wherever the registry has (or can mount) that blob, and compressed anew (a new digest,
/// a new manifest: what `docker push` does) where it has not.
#[test]
fn layers_without_their_blobs_push_and_pull_exactly() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let Some(reg2) = Registry::start(None) else {
        return;
    };
    // An image another tool pushed: Docker's manifest type, a gzip layer of its own.
    let extra = noise(400_000);
    let tar = rootfs_tar(&extra);
    let layer = gz(&tar);
    let host = hako_image::Platform::host();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host.architecture, "os": host.os, "config": {"Env": ["C=3"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
    }))
    .unwrap();
    let repo = "disk/foreign";
    let config_d = upload(&reg.host(), repo, &config);
    let layer_d = upload(&reg.host(), repo, &layer);
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_d, "size": layer.len()}],
    }))
    .unwrap();
    ureq::put(&format!("http://{}/v2/{repo}/manifests/1", reg.host()))
        .set(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send_bytes(&manifest)
        .unwrap();
    let original = format!("sha256:{}", sha256_hex(&manifest));

    let a = Root::new("hako-test-registry-");
    let store = ImageStore::open(a.path()).unwrap();
    let name = format!("{}/{repo}:1", reg.host());
    let pulled = store.pull(&name, &PullOptions::default()).unwrap();
    assert_eq!(pulled.digest.as_str(), original);
    // The 400 KB layer is not in the blob store (compressed or not).
    assert!(blob_bytes(a.path()) < 64 * 1024, "{}", blob_bytes(a.path()));
    assert!(
        !a.path()
            .join("blobs/sha256")
            .join(layer_d.trim_start_matches("sha256:"))
            .exists(),
        "the compressed layer blob was kept"
    );
    // save gives back the registry's layer, uncompressed, byte for byte (its digest is the
    // diff id).
    let mut pulled_archive = Vec::new();
    store.save(&[name.as_str()], &mut pulled_archive).unwrap();
    let layer_name = format!("{}/layer.tar", sha256_hex(&tar));
    let saved = tar_member(&pulled_archive, &layer_name)
        .or_else(|| {
            tar_member(
                &pulled_archive,
                &format!("blobs/sha256/{}", sha256_hex(&tar)),
            )
        })
        .expect("the layer in the saved archive");
    assert!(saved == tar, "the saved layer differs from the registry's");

    // Same registry, another repository: mounted, the very same manifest.
    let copy = format!("{}/disk/copy:1", reg.host());
    store.tag(&name, &copy).unwrap();
    let (report, s) = statuses_of(&store, &copy);
    assert_eq!(report.digest.as_str(), original);
    assert!(s.contains(&ProgressStatus::Mounted), "{s:?}");
    // Back to where it came from: already there.
    let (report, s) = statuses_of(&store, &name);
    assert_eq!(report.digest.as_str(), original);
    assert!(s.contains(&ProgressStatus::LayerAlreadyExists), "{s:?}");

    // A registry that has none of it: the layer is rebuilt and compressed anew.
    let far = format!("{}/{repo}:1", reg2.host());
    store.tag(&name, &far).unwrap();
    let (first, s) = statuses_of(&store, &far);
    assert_ne!(first.digest.as_str(), original);
    assert!(s.contains(&ProgressStatus::Pushed), "{s:?}");
    let raw = ureq::get(&format!("http://{}/v2/{repo}/manifests/1", reg2.host()))
        .set(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .call()
        .unwrap();
    let m: serde_json::Value = serde_json::from_reader(raw.into_reader()).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(m["config"]["digest"], config_d.as_str());
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_ne!(m["layers"][0]["digest"], layer_d.as_str());
    // Pushed again: the new blob is known there now, nothing is compressed twice.
    let (again, s) = statuses_of(&store, &far);
    assert_eq!(again.digest, first.digest);
    assert!(s.contains(&ProgressStatus::LayerAlreadyExists), "{s:?}");
    assert!(!s.contains(&ProgressStatus::Pushed), "{s:?}");

    // Pulled from there: the same image, the same files.
    let b = Root::new("hako-test-registry-");
    let other = ImageStore::open(b.path()).unwrap();
    let back = other.pull(&far, &PullOptions::default()).unwrap();
    assert_eq!(back.id, pulled.id);
    assert_eq!(back.digest, first.digest);
    assert_eq!(
        other.inspect(&far).unwrap()["RootFS"],
        store.inspect(&name).unwrap()["RootFS"]
    );
    assert_eq!(read_extra(&other, &far, "hako-disk-1"), extra);

    // A loaded image (uncompressed layers): pushed as is, pulled back with the same digest.
    let mut archive = Vec::new();
    other.save(&[far.as_str()], &mut archive).unwrap();
    let c = Root::new("hako-test-registry-");
    let loaded_store = ImageStore::open(c.path()).unwrap();
    let loaded = loaded_store.load(&mut Cursor::new(&archive)).unwrap();
    assert!(blob_bytes(c.path()) < 64 * 1024, "{}", blob_bytes(c.path()));
    let plain = format!("{}/disk/loaded:1", reg2.host());
    loaded_store.tag(loaded[0].id.as_str(), &plain).unwrap();
    let (pushed, _) = statuses_of(&loaded_store, &plain);
    let d = Root::new("hako-test-registry-");
    let last = ImageStore::open(d.path()).unwrap();
    let got = last.pull(&plain, &PullOptions::default()).unwrap();
    assert_eq!(got.digest, pushed.digest);
    assert_eq!(got.id, pulled.id);
    let mut archive2 = Vec::new();
    last.save(&[plain.as_str()], &mut archive2).unwrap();
    assert_eq!(
        archive_layers(&archive2),
        archive_layers(&archive),
        "layer tars differ after load, push, pull"
    );
}

/// The layer files of a saved archive (path, sha256 of the contents).
fn archive_layers(archive: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(Cursor::new(archive));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if data.len() > 100_000 {
            out.push((path, sha256_hex(&data)));
        }
    }
    out.sort();
    out
}

/// The contents of the member `name` of a tar archive.
fn tar_member(archive: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut ar = tar::Archive::new(Cursor::new(archive));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            return Some(data);
        }
    }
    None
}
