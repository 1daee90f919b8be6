//! Container networking end to end, as root: each test runs its hako in a network
//! namespace of its own (see `common::Hako`), traffic goes only to it, to the containers,
//! and to an "outside" namespace the test makes.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Hako;

/// A container command serving `hello from NAME` on TCP `port`, one line per connection.
fn server(name: &str, port: u16) -> String {
    format!("while true; do echo hello from {name} | nc -l -p {port}; done")
}

/// `echo x | nc -w 3 HOST PORT` inside container `c` (busybox's wget segfaults), once.
fn nc_once(h: &Hako, c: &str, host: &str, port: u16) -> String {
    let o = h.run(&[
        "exec",
        c,
        "sh",
        "-c",
        &format!("echo x | nc -w 3 {host} {port}"),
    ]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// [`nc_once`], retried for a few seconds while the answer is empty (a server that is
/// still starting); an expected failure returns "" after the retries.
fn nc_from(h: &Hako, c: &str, host: &str, port: u16) -> String {
    // Generous: the whole suite runs at once on two shared cores.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = nc_once(h, c, host, port);
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Connects from the test's namespace (the containers' "host").
fn fetch(h: &Hako, addr: &str) -> String {
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    h.net.run(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let _ = s.write_all(b"x\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if !out.is_empty() {
                    return out.trim().to_string();
                }
            }
            if Instant::now() > deadline {
                return String::new();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

fn endpoint(h: &Hako, c: &str, net: &str, field: &str) -> String {
    h.inspect(c)["NetworkSettings"]["Networks"][net][field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ip_of(h: &Hako, c: &str, net: &str) -> String {
    endpoint(h, c, net, "IPAddress")
}

/// An "outside" namespace linked to the test's: 192.0.2.2 / 2001:db8::2 there, 192.0.2.1 /
/// 2001:db8::1 on the test's side, which routes everything else through it.
struct Outside {
    ns: hako_test_support::NetnsGuard,
    host: String,
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["-n", &self.host, "link", "del", "hkout0"])
            .output();
    }
}

impl Outside {
    fn new(h: &Hako) -> Outside {
        let ns = hako_test_support::NetnsGuard::new().expect("outside netns");
        let sh = |script: String| {
            let o = Command::new("sh").arg("-c").arg(&script).output().unwrap();
            assert!(
                o.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let (t, o) = (h.net.name(), ns.name());
        sh(format!(
            "ip -n {t} link add hkout0 type veth peer name hkout1 netns {o} && \
             ip -n {t} addr add 192.0.2.1/24 dev hkout0 && ip -n {t} -6 addr add 2001:db8::1/64 dev hkout0 nodad && \
             ip -n {t} link set hkout0 up && ip -n {o} link set lo up && \
             ip -n {o} addr add 192.0.2.2/24 dev hkout1 && ip -n {o} -6 addr add 2001:db8::2/64 dev hkout1 nodad && \
             ip -n {o} link set hkout1 up && ip -n {t} route add default via 192.0.2.2"
        ));
        Outside {
            ns,
            host: t.to_string(),
        }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns.path().display()))
            .arg("--")
            .arg(program)
            .stdin(Stdio::null());
        c
    }

    /// A server in the outside namespace. It has no route to container subnets: only a
    /// masqueraded connection can get its answer back.
    fn serve(&self, port: u16) -> Group {
        Group::spawn(self.cmd("busybox").args([
            "sh",
            "-c",
            &format!("while true; do echo outside | busybox nc -l -p {port}; done"),
        ]))
    }

    /// `echo x | nc -w 3 ADDR PORT` from the outside namespace, retried for a few seconds
    /// while it gets nothing (a server's `while ...; do nc -l; done` loop does not listen
    /// between two connections). For answers that must come.
    fn nc_until(&self, addr: &str, port: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = self
                .cmd("busybox")
                .args([
                    "sh",
                    "-c",
                    &format!("echo x | busybox nc -w 3 {addr} {port}"),
                ])
                .output()
                .expect("nc from outside");
            let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if !got.is_empty() || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The processes left in the outside namespace.
    fn processes(&self) -> String {
        let o = Command::new("ip")
            .args(["netns", "pids", self.ns.name()])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

/// A helper process in a process group of its own, killed as a group when dropped: a
/// `while ...; do nc -l ...; done` loop's `nc` goes with its shell, also when the test
/// fails before the end (a plain `Child` is never killed on drop).
struct Group(Child);

impl Group {
    fn spawn(c: &mut Command) -> Group {
        Group(
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("spawn a helper process"),
        )
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let killed = i32::try_from(self.0.id()).ok().and_then(|pid| {
            nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .ok()
        });
        if killed.is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn user_network_names_aliases_and_no_names_on_the_default_bridge() {
    need_root!();
    let h = Hako::new();
    let id = h.ok(&["network", "create", "front"]).trim().to_string();
    assert_eq!(id.len(), 64);
    let web = h.start(
        &[
            "--name",
            "web",
            "--network",
            "front",
            "--network-alias",
            "www",
            "busybox",
            "sh",
            "-c",
            &server("web", 80),
        ],
        None,
    );
    let client = h.start(
        &[
            "--name",
            "client",
            "--network",
            "front",
            "busybox",
            "sleep",
            "300",
        ],
        None,
    );
    for name in ["web", "www", &web[..12]] {
        assert_eq!(
            nc_from(&h, "client", name, 80),
            "hello from web",
            "by {name}"
        );
    }
    let web_ip = ip_of(&h, "web", "front");
    assert_eq!(
        nc_from(&h, "client", &web_ip, 80),
        "hello from web",
        "by IP"
    );
    // A container started after the asker is found; other names go to the host's
    // resolvers (unreachable here: an answer, not a hang).
    let late = h.start(
        &[
            "--name",
            "late",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            &server("late", 81),
        ],
        None,
    );
    assert_eq!(nc_from(&h, "client", "late", 81), "hello from late");
    let o = h.run(&["exec", "client", "nslookup", "nosuchname.invalid"]);
    assert!(!o.status.success());
    // The default bridge: reachable by IP, not by name (Docker's rule).
    let a = h.start(
        &["--name", "a", "busybox", "sh", "-c", &server("a", 80)],
        None,
    );
    let b = h.start(&["--name", "b", "busybox", "sleep", "300"], None);
    let a_ip = ip_of(&h, "a", "bridge");
    assert_eq!(nc_from(&h, "b", &a_ip, 80), "hello from a");
    assert_eq!(
        nc_once(&h, "b", "a", 80),
        "",
        "no names on the default bridge"
    );
    // Networks are isolated from each other.
    assert_eq!(
        nc_once(&h, "client", &a_ip, 80),
        "",
        "front cannot reach bridge"
    );
    let resolv = h.ok(&["exec", "b", "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    let hosts = h.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&web_ip), "{hosts}");
    let inspect = h.ok(&[
        "network",
        "inspect",
        "-f",
        "{{len .Containers}} {{.Driver}}",
        "front",
    ]);
    assert_eq!(inspect.trim(), "3 bridge");
    let ls = h.ok(&["network", "ls", "--format", "{{.Name}}"]);
    for n in ["bridge", "front", "host", "none"] {
        assert!(ls.lines().any(|l| l == n), "{ls}");
    }
    let e = h.fails(1, &["network", "rm", "front"]);
    assert!(e.contains("has active endpoints"), "{e}");
    h.finish(&[&web, &client, &late, &a, &b]);
    assert_eq!(h.ok(&["network", "rm", "front"]).trim(), "front");
    let e = h.fails(1, &["network", "inspect", "front"]);
    assert!(e.contains("network front not found"), "{e}");
}

#[test]
fn outbound_traffic_is_masqueraded() {
    need_root!();
    let h = Hako::new();
    let out = Outside::new(&h);
    let srv = out.serve(7000);
    std::thread::sleep(Duration::from_millis(300));
    let c = h.start(&["busybox", "sleep", "300"], None);
    assert_eq!(nc_from(&h, &c, "192.0.2.2", 7000), "outside");
    drop(srv);
    // The server's loop and its `nc` are gone (a killed shell used to leave its `nc`).
    h.wait_for("no process left in the outside namespace", || {
        out.processes().is_empty()
    });
    drop(out);
    h.finish(&[&c]);
}

#[test]
fn published_ports_from_loopback_outside_other_containers_and_hairpin() {
    need_root!();
    let h = Hako::new();
    let out = Outside::new(&h);
    let web = h.start(
        &[
            "--name",
            "web",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:8081:80",
            "-p",
            "5353:53/udp",
            "busybox",
            "sh",
            "-c",
            &server("web", 80),
        ],
        None,
    );
    assert_eq!(fetch(&h, "127.0.0.1:8080"), "hello from web");
    assert_eq!(fetch(&h, "127.0.0.1:8081"), "hello from web");
    assert_eq!(
        fetch(&h, "192.0.2.1:8080"),
        "hello from web",
        "the host's other address"
    );
    // From another namespace, through the host's address.
    assert_eq!(
        out.nc_until("192.0.2.1", 8080),
        "hello from web",
        "from outside"
    );
    // 127.0.0.1-only ports are not reachable from outside.
    let o = out
        .cmd("busybox")
        .args(["sh", "-c", "echo x | busybox nc -w 2 192.0.2.1 8081"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
    // Another container, and the container itself (hairpin), through the host.
    let other = h.start(&["busybox", "sleep", "300"], None);
    let gw = h.ok(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", &web]);
    assert_eq!(
        nc_from(&h, &other, gw.trim(), 8080),
        "hello from web",
        "container → host port"
    );
    assert_eq!(
        nc_from(&h, &web, gw.trim(), 8080),
        "hello from web",
        "hairpin"
    );
    // UDP: an echo socket in the container's namespace answers through the published port.
    let key = h.ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &web]);
    let key = key.trim().to_string();
    let echo = std::thread::spawn(move || {
        let f = std::fs::File::open(&key).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind("0.0.0.0:53").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let got = h.net.run(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(b"ping", "127.0.0.1:5353").unwrap();
        let mut buf = [0u8; 64];
        s.recv(&mut buf)
            .map(|n| buf[..n].to_vec())
            .unwrap_or_default()
    });
    assert_eq!(got, b"ping", "udp through the published port");
    echo.join().unwrap();
    // Docker's views of it.
    let ports = h.ok(&["port", "web"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:8080"), "{ports}");
    assert!(ports.contains("80/tcp -> 127.0.0.1:8081"), "{ports}");
    assert!(ports.contains("53/udp -> 0.0.0.0:5353"), "{ports}");
    assert_eq!(h.ok(&["port", "web", "53/udp"]).trim(), "0.0.0.0:5353");
    let ps = h.ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=web"]);
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let ins = h.ok(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", &web]);
    assert!(ins.contains("\"HostPort\":\"8080\""), "{ins}");
    // The rules go with the container and come back when it starts again.
    h.ok(&["stop", "-t", "0", &web]);
    assert_eq!(fetch(&h, "127.0.0.1:8081"), "");
    assert!(
        h.net.leaks().iter().all(|l| !l.contains("8081")),
        "{:?}",
        h.net.leaks()
    );
    h.ok(&["start", &web]);
    assert_eq!(fetch(&h, "127.0.0.1:8081"), "hello from web");
    drop(out);
    h.finish(&[&web, &other]);
}

#[test]
fn publish_all_expose_and_port_conflicts() {
    need_root!();
    let h = Hako::new();
    let a = h.start(
        &[
            "--expose",
            "80",
            "--expose",
            "90-91",
            "-P",
            "busybox",
            "sh",
            "-c",
            &server("a", 80),
        ],
        None,
    );
    let ports = h.ok(&["port", &a]);
    assert_eq!(ports.lines().count(), 3, "{ports}");
    let p80 = h.ok(&["port", &a, "80"]).trim().to_string();
    assert!(p80.starts_with("0.0.0.0:"), "{p80}");
    assert_eq!(
        fetch(&h, &format!("127.0.0.1:{}", &p80[8..])),
        "hello from a"
    );
    // A port held by any process is refused before the container starts; nothing is left.
    let holder = Group::spawn(h.host("busybox").args(["nc", "-l", "-p", "9099"]));
    std::thread::sleep(Duration::from_millis(300));
    let before = h.net.leaks();
    let e = h.fails(
        125,
        &["run", "--name", "clash", "-p", "9099:80", "busybox", "true"],
    );
    assert!(e.contains("port is already allocated"), "{e}");
    let o = h.run(&["ps", "-aq", "--filter", "name=clash"]);
    let clash = String::from_utf8_lossy(&o.stdout).trim().to_string();
    drop(holder);
    // A port held by another container is refused too.
    let e = h.fails(
        125,
        &[
            "run",
            "-d",
            "-p",
            &format!("{}:80", &p80[8..]),
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("port is already allocated"), "{e}");
    let after = h.net.leaks();
    assert_eq!(
        before.iter().filter(|l| l.starts_with("interface")).count(),
        after.iter().filter(|l| l.starts_with("interface")).count(),
        "no interface left: {after:?}"
    );
    if !clash.is_empty() {
        h.ok(&["rm", "-f", &clash]);
    }
    for id in String::from_utf8_lossy(
        &h.run(&["ps", "-aq", "--no-trunc", "--filter", "status=created"])
            .stdout,
    )
    .lines()
    {
        h.ok(&["rm", "-f", id]);
    }
    // Ranges of different lengths, and -p with --network host (Docker's warning).
    let e = h.fails(125, &["run", "-p", "8000-8002:80-81", "busybox", "true"]);
    assert!(e.contains("invalid ranges"), "{e}");
    let o = h.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "80:80",
        "busybox",
        "true",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Published ports are discarded"));
    h.finish(&[&a]);
}

#[test]
fn connect_and_disconnect_a_running_container() {
    need_root!();
    let h = Hako::new();
    h.ok(&["network", "create", "--subnet", "10.99.7.0/24", "back"]);
    let a = h.start(
        &["--name", "a", "busybox", "sh", "-c", &server("a", 80)],
        None,
    );
    let b = h.start(
        &[
            "--name",
            "b",
            "--network",
            "back",
            "busybox",
            "sleep",
            "300",
        ],
        None,
    );
    assert_eq!(nc_once(&h, "b", "a", 80), "", "not yet on back");
    h.ok(&[
        "network",
        "connect",
        "--alias",
        "alpha",
        "--ip",
        "10.99.7.50",
        "back",
        "a",
    ]);
    let addrs = h.ok(&["exec", "a", "ip", "-4", "addr", "show", "eth1"]);
    assert!(addrs.contains("10.99.7.50/24"), "{addrs}");
    assert_eq!(nc_from(&h, "b", "a", 80), "hello from a");
    assert_eq!(nc_from(&h, "b", "alpha", 80), "hello from a");
    let e = h.fails(1, &["network", "connect", "back", "a"]);
    assert!(e.contains("already exists"), "{e}");
    h.ok(&["network", "disconnect", "back", "a"]);
    let o = h.run(&["exec", "a", "ip", "link", "show", "eth1"]);
    assert!(!o.status.success(), "eth1 is gone");
    assert_eq!(nc_once(&h, "b", "a", 80), "");
    // None and host containers cannot be connected.
    let n = h.start(&["--network", "none", "busybox", "sleep", "300"], None);
    // Its namespace has only `lo`, up (as Docker's).
    let links = h.ok(&["exec", &n, "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains(",UP"), "{links}");
    // Also after a restart by the policy (a new namespace from the runtime each time).
    let r = h
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--restart",
            "on-failure:1",
            "busybox",
            "sh",
            "-c",
            "ip -o link show lo; exit 3",
        ])
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.ok(&["inspect", "-f", "{{.State.Running}} {{.RestartCount}}", &r]) != "false 1\n" {
        assert!(Instant::now() < deadline, "no restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = h.ok(&["logs", &r]);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    assert!(logs.lines().all(|l| l.contains(",UP")), "{logs}");
    let e = h.fails(1, &["network", "connect", "back", &n]);
    assert!(e.contains("none"), "{e}");
    h.finish(&[&a, &b, &n, &r]);
    h.ok(&["network", "rm", "back"]);
}

#[test]
fn ipv6_networks_are_dual_stack() {
    need_root!();
    let h = Hako::new();
    let out = Outside::new(&h);
    h.ok(&["network", "create", "--ipv6", "six"]);
    let sub = h.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        "six",
    ]);
    assert!(sub.contains("fd"), "a ULA subnet: {sub}");
    let a = h.start(
        &[
            "--name",
            "a",
            "--network",
            "six",
            "-p",
            "8086:80",
            "-p",
            "8087:53/udp",
            "busybox",
            "sh",
            "-c",
            &server("a", 80),
        ],
        None,
    );
    let b = h.start(
        &["--name", "b", "--network", "six", "busybox", "sleep", "300"],
        None,
    );
    let a6 = endpoint(&h, "a", "six", "GlobalIPv6Address");
    let a6 = a6.as_str();
    assert!(a6.starts_with("fd"), "{a6}");
    let on = h.ok(&[
        "exec",
        "b",
        "cat",
        "/proc/sys/net/ipv6/conf/eth0/disable_ipv6",
    ]);
    assert_eq!(on.trim(), "0", "IPv6 stays on where the network has it");
    assert_eq!(
        nc_from(&h, "b", a6, 80),
        "hello from a",
        "container to container over IPv6"
    );
    let o = h.ok(&["exec", "b", "nslookup", "-type=AAAA", "a"]);
    assert!(o.contains(a6), "AAAA answer: {o}");
    assert_eq!(
        out.nc_until("2001:db8::1", 8086),
        "hello from a",
        "published on the host's IPv6 address"
    );
    // IPv6 loopback, which no NAT can serve: the shim relays TCP and UDP.
    assert_eq!(fetch(&h, "[::1]:8086"), "hello from a", "TCP on [::1]");
    let key = h.ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "a"]);
    let key = key.trim().to_string();
    let echo = std::thread::spawn(move || {
        let f = std::fs::File::open(&key).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind("[::]:53").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..2 {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let got = h.net.run(|| {
        let s = UdpSocket::bind("[::1]:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answers = Vec::new();
        for msg in [&b"ping"[..], &b"pong"[..]] {
            s.send_to(msg, "[::1]:8087").unwrap();
            let mut buf = [0u8; 64];
            let n = s.recv_from(&mut buf).map(|(n, from)| {
                assert_eq!(
                    from.port(),
                    8087,
                    "the answer comes from the published port"
                );
                n
            });
            answers.push(n.map(|n| buf[..n].to_vec()).unwrap_or_default());
        }
        answers
    });
    assert_eq!(
        got,
        vec![b"ping".to_vec(), b"pong".to_vec()],
        "UDP on [::1]"
    );
    echo.join().unwrap();
    drop(out);
    h.finish(&[&a, &b]);
    h.ok(&["network", "rm", "six"]);
}

/// As Docker (26 and later): an interface on an IPv4-only network has IPv6 disabled (no
/// link-local address), `lo` keeps ::1.
#[test]
fn ipv4_only_interfaces_have_no_ipv6() {
    need_root!();
    let h = Hako::new();
    h.ok(&["network", "create", "four"]);
    let show = "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -6 addr show dev eth0; \
                ip -6 addr show dev lo";
    for net in ["bridge", "four"] {
        let o = h.ok(&["run", "--rm", "--network", net, "busybox", "sh", "-c", show]);
        let mut lines = o.lines();
        assert_eq!(lines.next(), Some("1"), "eth0 on {net}: {o}");
        assert!(!o.contains("fe80"), "no link-local address on {net}: {o}");
        assert!(o.contains("::1/128"), "lo keeps ::1 on {net}: {o}");
    }
    h.ok(&["network", "rm", "four"]);
}

#[test]
fn parallel_runs_get_distinct_addresses() {
    need_root!();
    let h = Hako::new();
    let n = 50;
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    h.ok(&["run", "-d", "busybox", "sleep", "600"])
                        .trim()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut seen = HashSet::new();
    for id in &ids {
        let ip = ip_of(&h, id, "bridge");
        assert!(!ip.is_empty(), "{id} has an address");
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }
    // Removed in parallel too: one by one, 50 stops take longer than the test may.
    std::thread::scope(|s| {
        for id in &ids {
            let h = &h;
            s.spawn(move || h.ok(&["rm", "-f", id]));
        }
    });
    h.assert_clean(&[]);
}

#[test]
fn parallel_network_creates_get_distinct_subnets() {
    need_root!();
    // Separate processes at once, each picking "the first free subnet": found by the soak,
    // where two networks got the same one and their containers the same address.
    let h = Hako::new_empty();
    let n = 12;
    std::thread::scope(|s| {
        for i in 0..n {
            let h = &h;
            s.spawn(move || h.ok(&["network", "create", &format!("par{i}")]));
        }
    });
    let mut seen = HashSet::new();
    for i in 0..n {
        let subnet = h
            .ok(&[
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                &format!("par{i}"),
            ])
            .trim()
            .to_string();
        assert!(!subnet.is_empty(), "par{i} has a subnet");
        assert!(
            seen.insert(subnet.clone()),
            "{subnet} given to two networks"
        );
    }
    let names: Vec<String> = (0..n).map(|i| format!("par{i}")).collect();
    let mut args = vec!["network", "rm"];
    args.extend(names.iter().map(String::as_str));
    h.ok(&args);
    h.assert_clean(&[]);
}

#[test]
fn restart_policy_keeps_the_address_and_the_port() {
    need_root!();
    let h = Hako::new();
    // Serves one connection, then exits 1: the shim restarts it.
    let c = h.start(
        &[
            "--restart",
            "on-failure",
            "-p",
            "127.0.0.1:8088:80",
            "busybox",
            "sh",
            "-c",
            "echo once | nc -l -p 80; exit 1",
        ],
        None,
    );
    let ip = ip_of(&h, &c, "bridge");
    assert_eq!(fetch(&h, "127.0.0.1:8088"), "once");
    assert_eq!(fetch(&h, "127.0.0.1:8088"), "once", "after a restart");
    h.wait_for("a restart", || {
        h.ok(&["inspect", "-f", "{{.RestartCount}}", &c]).trim() != "0"
    });
    assert_eq!(ip_of(&h, &c, "bridge"), ip, "same namespace, same address");
    h.finish(&[&c]);
}

#[test]
fn network_is_released_after_stop_rm_and_kill_9_of_the_shim() {
    need_root!();
    let h = Hako::new();
    let a = h.start(&["-p", "8090:80", "busybox", "sleep", "300"], None);
    // The container's host-side veths, each with whether it is up.
    let veths = |h: &Hako| -> Vec<(String, bool)> {
        String::from_utf8_lossy(&h.host("ip").args(["-o", "link"]).output().unwrap().stdout)
            .lines()
            .filter(|l| l.contains(": hk"))
            .map(|l| {
                let flags = l.split('<').nth(1).unwrap_or("").split('>').next();
                (
                    l.to_string(),
                    flags.is_some_and(|f| f.split(',').any(|f| f == "UP")),
                )
            })
            .collect()
    };
    let links = |h: &Hako| veths(h).len();
    assert_eq!(links(&h), 1, "one veth");
    h.ok(&["stop", "-t", "0", &a]);
    // Out of service at once; the kernel removes the pair with the dead namespace, in a
    // worker of its own, shortly after.
    let left = veths(&h);
    assert!(left.iter().all(|(_, up)| !up), "a veth still up: {left:?}");
    h.wait_for("the veth to go with its namespace", || links(&h) == 0);
    assert!(
        h.net
            .leaks()
            .iter()
            .all(|l| l.starts_with("interface hako0") || !l.starts_with("interface"))
    );
    h.ok(&["rm", &a]);
    // kill -9 of the shim: the next hako command releases the network.
    let b = h.start(&["busybox", "sleep", "300"], None);
    let pid: i32 =
        std::fs::read_to_string(h.exec_root().join("containers").join(&b).join("shim.pid"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    h.ok(&["ps", "-a"]);
    let left = veths(&h);
    assert!(left.iter().all(|(_, up)| !up), "a veth still up: {left:?}");
    h.wait_for("the veth to go after kill -9 of the shim", || {
        links(&h) == 0
    });
    assert!(!h.exec_root().join("netns").join(&b).exists());
    h.finish(&[&b]);
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    need_root!();
    let h = Hako::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--network", "nosuch", "busybox", "true"],
            "network nosuch not found",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.5.0.0/16",
                "--gateway",
                "10.6.0.1",
                "x",
            ],
            "no matching subnet for gateway",
        ),
        (
            &["network", "create", "--subnet", "10.5.0.0/33", "x"],
            "invalid CIDR",
        ),
        (
            &["run", "--ip", "10.1.1.1", "busybox", "true"],
            "user defined networks only",
        ),
        (&["network", "rm", "bridge"], "pre-defined network"),
        (
            &["network", "connect", "nosuch", "nosuch"],
            "No such container",
        ),
    ];
    for (args, msg) in cases {
        let e = h.fails(common::failure_code(args), args);
        assert!(e.contains(msg), "{args:?}: {e}");
    }
    h.ok(&["network", "create", "--subnet", "10.5.0.0/16", "five"]);
    let e = h.fails(1, &["network", "create", "--subnet", "10.5.1.0/24", "six"]);
    assert!(e.contains("overlaps"), "{e}");
    let e = h.fails(1, &["network", "create", "five"]);
    assert!(e.contains("already exists"), "{e}");
    let e = h.fails(
        125,
        &[
            "run",
            "--network",
            "five",
            "--ip",
            "10.9.0.5",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("no configured subnet"), "{e}");
    let a = h.start(
        &[
            "--network",
            "five",
            "--ip",
            "10.5.0.9",
            "busybox",
            "sleep",
            "300",
        ],
        None,
    );
    let links = h.net.leaks();
    let e = h.fails(
        125,
        &[
            "run",
            "--name",
            "dup",
            "--network",
            "five",
            "--ip",
            "10.5.0.9",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("in use"), "{e}");
    // The failed start left no interface or address behind (the created container stays,
    // as Docker's does).
    assert_eq!(h.net.leaks(), links);
    h.finish(&[&a, "dup"]);
    assert!(h.ok(&["network", "prune", "-f"]).contains("five"));
}

/// `HAKO_FIREWALL=iptables-legacy` (the driver used where nftables is unusable): the choice
/// is recorded in the exec root, so later commands and the shims' cleanups use it without
/// the variable; published ports (IPv4 and IPv6, loopback, outside, hairpin) and masquerade
/// work with real iptables rules, nothing is in nftables, and no rule of a container or a
/// network is left after `rm`.
#[test]
fn the_iptables_driver_publishes_masquerades_and_cleans_up() {
    need_root!();
    let h = Hako::new();
    let out = Outside::new(&h);
    h.ok(&["network", "create", "--ipv6", "six"]);
    let o = h
        .cmd(&[
            "run",
            "-d",
            "--name",
            "a",
            "--network",
            "six",
            "-p",
            "8086:80",
            "busybox",
            "sh",
            "-c",
        ])
        .arg(server("a", 80))
        .env("HAKO_FIREWALL", "iptables-legacy")
        .output()
        .expect("hako run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let record = std::fs::read_to_string(h.exec_root().join("firewall")).unwrap_or_default();
    assert_eq!(record, "iptables-legacy", "the driver is recorded");
    let srv = out.serve(7000);
    let b = h.start(
        &["--name", "b", "--network", "six", "busybox", "sleep", "300"],
        None,
    );
    assert_eq!(nc_from(&h, &b, "192.0.2.2", 7000), "outside", "masquerade");
    assert_eq!(fetch(&h, "127.0.0.1:8086"), "hello from a", "127.0.0.1");
    assert_eq!(
        nc_from(&h, &b, "192.0.2.1", 8086),
        "hello from a",
        "hairpin"
    );
    for addr in ["192.0.2.1", "2001:db8::1"] {
        assert_eq!(
            out.nc_until(addr, 8086),
            "hello from a",
            "from outside to {addr}"
        );
    }
    let save = |program: &str| {
        let o = h.host(program).output().expect(program);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(save("iptables-legacy-save").contains("\"hako:port:tcp:0.0.0.0:8086\" -j DNAT"));
    let v6 = save("ip6tables-legacy-save");
    assert!(v6.contains("\"hako:port:tcp:[::]:8086\" -j DNAT"), "{v6}");
    let o = h.host("nft").args(["list", "tables"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("hako"),
        "nothing in nftables"
    );
    drop(srv);
    drop(out);
    h.finish(&[&a, &b]);
    h.ok(&["network", "rm", "six"]);
    let left = save("iptables-legacy-save") + &save("ip6tables-legacy-save");
    for gone in ["hako:port", "hako:hk", "DNAT --to", "MASQUERADE"] {
        assert!(!left.contains(gone), "{gone} left: {left}");
    }
}

/// `network inspect` and `volume inspect` (one helper): what is found is printed (a JSON
/// array, or the template once per object), then one error line per name not found, exit 125.
#[test]
fn network_and_volume_inspect_print_what_they_find_and_one_line_per_missing_name() {
    need_root!();
    let h = Hako::new_empty();
    h.ok(&["network", "create", "front"]);
    h.ok(&["volume", "create", "vol"]);
    for (kind, name, prefix) in [
        ("network", "front", "Error response from daemon: "),
        ("volume", "vol", "Error: "),
    ] {
        let o = h.run(&[kind, "inspect", name, "nope"]);
        assert_eq!(o.status.code(), Some(1), "{kind}");
        let found: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{kind}: {found}");
        assert_eq!(found[0]["Name"], name, "{kind}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{kind}: {err}");
        assert!(
            err.starts_with(prefix) && err.contains("nope"),
            "{kind}: {err}"
        );
        let o = h.run(&[kind, "inspect", "-f", "{{.Name}}", name, name]);
        assert!(o.status.success(), "{kind}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{name}\n{name}\n")
        );
        let e = h.fails(1, &[kind, "inspect", "-f", "{{.Nope", name]);
        assert_eq!(e.lines().count(), 1, "a bad template is one line: {e}");
    }
    // Docker's zero values a template may name.
    assert_eq!(
        h.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.IPAM.Driver}} {{.IPAM.Options}} {{.Internal}}",
            "front"
        ]),
        "default map[] false\n"
    );
    // ls prints CreatedAt as Go's time string, as the docker CLI does.
    let created = h.ok(&[
        "network",
        "ls",
        "--filter",
        "name=front",
        "--format",
        "{{.CreatedAt}}",
    ]);
    assert!(
        created.ends_with(" +0000 UTC\n") && created.as_bytes().get(10) == Some(&b' '),
        "{created}"
    );
    h.ok(&["network", "rm", "front"]);
    h.ok(&["volume", "rm", "vol"]);
}
