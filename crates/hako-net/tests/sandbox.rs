//! hako-net on its own, as root, each test in a throwaway network namespace of its own
//! (the test thread unshares one): the host's network is never touched. "Containers" are
//! bare namespaces with a busybox `nc` server started by `nsenter`.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hako_net::files::DnsConfig;
use hako_net::ports::{self, Wanted};
use hako_net::{AttachRequest, Net, NetOptions, NetworkCreate, SetupRequest};

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "these tests need root (CI=true)"
    );
    eprintln!("SKIP: needs root");
    false
}

/// The test's own network namespace ("the host"), with loopback up.
fn sandbox() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
    let mut nl = hako_net::netlink::Socket::new().expect("netlink");
    let lo = nl.link("lo").expect("lo").expect("lo exists");
    nl.set_up(lo.index, "lo").expect("lo up");
}

struct Env {
    net: Net,
    _dir: tempfile::TempDir,
    exec: std::path::PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = dir.path().join("run");
    let net = Net::open(NetOptions {
        db: dir.path().join("hako.db"),
        exec_root: exec.clone(),
        bridge_name: "hako0".into(),
        bridge_subnet: None,
        mtu: None,
        dns_program: env!("CARGO_BIN_EXE_hako-dns").into(),
    })
    .expect("open");
    Env {
        net,
        _dir: dir,
        exec,
    }
}

fn busybox() -> &'static str {
    if Path::new("/bin/busybox").exists() {
        "/bin/busybox"
    } else {
        "busybox"
    }
}

/// A TCP server answering `hello from NAME` once per connection, in `netns`.
fn serve(netns: &Path, port: u16, name: &str) -> Child {
    let c = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg(busybox())
        .args([
            "sh",
            "-c",
            &format!(
                "while true; do echo hello from {name} | {} nc -l -p {port}; done",
                busybox()
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // A group of its own: `kill` ends the loop and the `nc` waiting in it.
        .process_group(0)
        .spawn()
        .expect("nsenter");
    std::thread::sleep(Duration::from_millis(200));
    c
}

fn fetch(addr: (IpAddr, u16)) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let _ = s.write_all(b"x\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if !out.is_empty() {
                    return out;
                }
            }
            Err(e) if Instant::now() > deadline => return format!("error: {e}"),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn links() -> Vec<String> {
    hako_net::netlink::Socket::new()
        .and_then(|mut nl| nl.links())
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect()
}

fn kill(mut c: Child) {
    // The child's group when it leads one, else the child.
    let group = i32::try_from(c.id()).ok().and_then(|pid| {
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .ok()
    });
    if group.is_none() {
        let _ = c.kill();
    }
    let _ = c.wait();
}

#[test]
fn bridge_ports_and_cleanup() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let id = format!("{}{}", "a".repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &id,
            &[AttachRequest {
                network: "bridge".into(),
                ..Default::default()
            }],
        )
        .expect("configure");
    let binds = ports::parse_publish("127.0.0.1:8080:80").unwrap();
    let wanted: Vec<Wanted> = ports::wanted(&binds, false, &[]).unwrap();
    let s = e
        .net
        .setup(&SetupRequest {
            container: id.clone(),
            name: "web".into(),
            hostname: "web".into(),
            ports: wanted.clone(),
            dns: DnsConfig::default(),
            extra_hosts: vec!["gw:host-gateway".into()],
        })
        .expect("setup");
    let ip = s.endpoints[0].ipv4.expect("an IPv4 address");
    assert!(ip.to_string().starts_with("10.77."), "{ip}");
    assert!(s.hosts.contains(&format!("{ip}\tweb")), "{}", s.hosts);
    assert!(s.hosts.contains("10.77.0.1\tgw"), "{}", s.hosts);
    assert!(links().contains(&"hako0".to_string()));
    let ns = e.net.netns_path(&id);
    let server = serve(&ns, 80, "web");
    assert_eq!(fetch((ip, 80)).trim(), "hello from web", "direct");
    assert_eq!(
        fetch(("127.0.0.1".parse().unwrap(), 8080)).trim(),
        "hello from web",
        "published on 127.0.0.1"
    );
    // The port is held: nobody else can take it, and a second container is refused
    // before anything of it exists.
    assert!(std::net::TcpListener::bind("127.0.0.1:8080").is_err());
    let id2 = format!("{}{}", "b".repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &id2,
            &[AttachRequest {
                network: "bridge".into(),
                ..Default::default()
            }],
        )
        .unwrap();
    let err = e
        .net
        .setup(&SetupRequest {
            container: id2.clone(),
            name: "web2".into(),
            hostname: "web2".into(),
            ports: wanted,
            dns: DnsConfig::default(),
            extra_hosts: vec![],
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("port is already allocated"), "{err}");
    assert!(!e.net.netns_path(&id2).exists());
    assert!(e.net.endpoints(&id2).unwrap().is_empty(), "no address held");
    kill(server);
    drop(s);
    e.net.teardown(&id).expect("teardown");
    let left: Vec<String> = links().into_iter().filter(|l| l != "lo").collect();
    assert!(left.is_empty(), "links left: {left:?}");
    assert!(!ns.exists());
    let table = hako_net::firewall::list(e.net.backend());
    assert!(!table.contains("10.77."), "elements left: {table}");
    assert!(e.net.endpoints(&id).unwrap().is_empty());
    e.net.forget(&id).unwrap();
    e.net.forget(&id2).unwrap();
    assert!(
        std::fs::read_dir(e.exec.join("netns"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn user_network_names_and_isolation() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let n = e
        .net
        .create_network(&NetworkCreate {
            name: "front".into(),
            ipv6: true,
            ..Default::default()
        })
        .expect("create");
    assert!(n.v6().is_some());
    let mk = |name: &str, net: &str, alias: Vec<String>| {
        let id = hako_net::random_hex(64);
        e.net
            .configure(
                &id,
                &[AttachRequest {
                    network: net.into(),
                    aliases: alias,
                    ..Default::default()
                }],
            )
            .unwrap();
        let s = e
            .net
            .setup(&SetupRequest {
                container: id.clone(),
                name: name.into(),
                hostname: name.into(),
                ports: vec![],
                dns: DnsConfig::default(),
                extra_hosts: vec![],
            })
            .unwrap();
        (id, s)
    };
    let (a, sa) = mk("alpha", "front", vec!["db".into()]);
    let (b, sb) = mk("beta", "front", vec![]);
    let (c, _sc) = mk("gamma", "bridge", vec![]);
    let gw = n.v4().unwrap().gateway;
    assert!(
        sb.resolv.contains(&format!("nameserver {gw}")),
        "{}",
        sb.resolv
    );
    let lookup = |ns: &Path, name: &str| {
        let o = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args([busybox(), "nslookup", name, &gw.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let nb = e.net.netns_path(&b);
    let a4 = sa.endpoints[0].ipv4.unwrap().to_string();
    let a6 = sa.endpoints[0].ipv6.unwrap().to_string();
    for name in ["alpha", "db", &a[..12]] {
        let out = lookup(&nb, name);
        assert!(out.contains(&a4), "{name}: {out}");
        assert!(out.contains(&a6), "{name} AAAA: {out}");
    }
    // A port with the lowest possible address joins the bridge: the bridge keeps its own
    // (a bridge left to the kernel takes the lowest port's, and the containers' ARP
    // caches point at the old one: the later container's lookup below timed out).
    let mac = |dev: &str| {
        let o = Command::new("ip")
            .args(["-br", "link", "show", dev])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string()
    };
    let before = mac(&n.bridge);
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip link add hkt-low address 02:00:00:00:00:01 type veth peer name hkt-low1 && \
             ip link set hkt-low master {} up",
            n.bridge
        ))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(mac(&n.bridge), before, "the bridge's address is its own");
    assert!(!before.is_empty());
    // A container started later is found at once; a container on another network not.
    let (d, _sd) = mk("delta", "front", vec![]);
    let want = _sd.endpoints[0].ipv4.unwrap().to_string();
    let out = lookup(&nb, "delta");
    assert!(out.contains(&want), "later container: {out}");
    assert!(!lookup(&nb, "gamma").contains("10.77."), "other network");
    let _ = Command::new("ip").args(["link", "del", "hkt-low"]).status();
    // Isolation: front cannot reach the default bridge's container.
    let gamma_ip = _sc.endpoints[0].ipv4.unwrap();
    let srv = serve(&e.net.netns_path(&c), 80, "gamma");
    let o = Command::new("nsenter")
        .arg(format!("--net={}", nb.display()))
        .args([busybox(), "nc", "-w", "2", &gamma_ip.to_string(), "80"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("hello"),
        "isolated"
    );
    kill(srv);
    assert!(hako_net::dns::running(&e.exec).is_some());
    for id in [&a, &b, &c, &d] {
        e.net.forget(id).unwrap();
    }
    drop((sa, sb));
    // The resolver goes with the last container on a user network.
    let deadline = Instant::now() + Duration::from_secs(5);
    while hako_net::dns::running(&e.exec).is_some() {
        assert!(Instant::now() < deadline, "hako-dns still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    e.net.remove_network("front").unwrap();
    let left: Vec<String> = links().into_iter().filter(|l| l != "lo").collect();
    assert!(left.is_empty(), "links left: {left:?}");
}

/// Runs `sh -c script` (in the calling thread's network namespace), asserting success.
fn sh(script: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `echo x | nc -w 3 HOST PORT` in the namespace at `ns`.
fn nc_in(ns: &Path, host: &str, port: u16) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(busybox())
        .args([
            "sh",
            "-c",
            &format!("echo x | {} nc -w 3 {host} {port}", busybox()),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// dockerd's `iptables -P FORWARD DROP` (iptables-nft) in the test's namespace: hako
/// accepts its bridges' traffic ahead of it in a chain of its own, and takes it away with
/// the last container. A drop policy in a native nftables table it cannot override: it
/// names it.
#[test]
fn another_tables_forward_drop_policy() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    // "Outside": a namespace behind 192.0.2.2 with a server on port 80.
    let out = tempfile::tempdir().unwrap();
    let out_ns = out.path().join("ns");
    let outside = hako_net::netns::Netns::create(&out_ns).expect("outside netns");
    let mut anchor = Command::new("sleep").arg("60").spawn().unwrap();
    sh(&format!(
        "nsenter --net={o} ip link add hkt-o1 type veth peer name hkt-o0 netns {pid} && \
         nsenter --net={o} sh -c 'ip link set lo up && ip addr add 192.0.2.2/24 dev hkt-o1 && ip link set hkt-o1 up' && \
         ip addr add 192.0.2.1/24 dev hkt-o0 && ip link set hkt-o0 up",
        o = out_ns.display(),
        pid = anchor.id()
    ));
    let _ = anchor.kill();
    let _ = anchor.wait();
    let server = serve(&out_ns, 80, "outside");
    sh("iptables -w -P FORWARD DROP");
    let id = format!("{}{}", "f".repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &id,
            &[AttachRequest {
                network: "bridge".into(),
                ..Default::default()
            }],
        )
        .unwrap();
    let binds = ports::parse_publish("8080:80").unwrap();
    let s = e
        .net
        .setup(&SetupRequest {
            container: id.clone(),
            name: "c".into(),
            hostname: "c".into(),
            ports: ports::wanted(&binds, false, &[]).unwrap(),
            dns: DnsConfig::default(),
            extra_hosts: vec![],
        })
        .expect("setup");
    let ns = e.net.netns_path(&id);
    assert_eq!(nc_in(&ns, "192.0.2.2", 80), "hello from outside", "out");
    let rules = sh("iptables -w -S HAKO-FORWARD");
    assert!(rules.contains("-i hako0 -j ACCEPT"), "{rules}");
    assert!(sh("iptables -w -S FORWARD").contains("-j HAKO-FORWARD"));
    let inside = serve(&ns, 80, "inside");
    assert_eq!(
        nc_in(&out_ns, "192.0.2.1", 8080),
        "hello from inside",
        "a published port from outside"
    );
    // Not routed in directly (Docker's rule too): only DNATed or answering traffic.
    let ip = s.endpoints[0].ipv4.unwrap().to_string();
    sh(&format!(
        "nsenter --net={} ip route add 10.77.0.0/16 via 192.0.2.1",
        out_ns.display()
    ));
    assert_eq!(nc_in(&out_ns, &ip, 80), "", "direct routing stays dropped");
    kill(inside);
    e.net.teardown(&id).expect("teardown");
    assert!(
        !sh("iptables -w -S").contains("HAKO-FORWARD"),
        "the chain and its jump go with the last container"
    );
    // A native table's drop: named, not edited.
    sh(
        "nft add table inet hkt && nft add chain inet hkt forward '{ type filter hook forward priority 0; policy drop; }'",
    );
    let b = hako_net::firewall::foreign::blockers(e.net.backend(), "hako0");
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].contains("table inet hkt chain forward"), "{b:?}");
    e.net
        .setup(&SetupRequest {
            container: id.clone(),
            name: "c".into(),
            hostname: "c".into(),
            ports: vec![],
            dns: DnsConfig::default(),
            extra_hosts: vec![],
        })
        .expect("setup again");
    assert_eq!(
        nc_in(&ns, "192.0.2.2", 80),
        "",
        "dropped, as the warning says"
    );
    assert!(
        sh("nft list chain inet hkt forward").contains("policy drop"),
        "not edited"
    );
    e.net.teardown(&id).expect("teardown");
    e.net.forget(&id).unwrap();
    kill(server);
    drop(outside);
    hako_net::netns::remove(&out_ns).expect("remove the outside namespace");
}

/// Port 53 taken on a user network's gateway (dnsmasq on 0.0.0.0:53, aardvark-dns #13):
/// the start fails with a clear error and leaves nothing; once it is free, names work.
#[test]
fn resolver_port_53_taken() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    e.net
        .create_network(&NetworkCreate {
            name: "front".into(),
            ..Default::default()
        })
        .expect("create");
    let squatter = std::net::UdpSocket::bind("0.0.0.0:53").expect("bind 0.0.0.0:53");
    let id = format!("{}{}", "d".repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &id,
            &[AttachRequest {
                network: "front".into(),
                ..Default::default()
            }],
        )
        .unwrap();
    let req = SetupRequest {
        container: id.clone(),
        name: "c".into(),
        hostname: "c".into(),
        ports: vec![],
        dns: DnsConfig::default(),
        extra_hosts: vec![],
    };
    let err = e.net.setup(&req).unwrap_err().to_string();
    assert!(
        err.contains("cannot listen on") && err.contains(":53"),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
    assert!(!e.net.netns_path(&id).exists(), "nothing left");
    assert!(e.net.endpoints(&id).unwrap().is_empty(), "no address held");
    drop(squatter);
    let s = e.net.setup(&req).expect("setup once 53 is free");
    let gw = s
        .resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap()
        .to_string();
    let o = Command::new("nsenter")
        .arg(format!("--net={}", e.net.netns_path(&id).display()))
        .args([busybox(), "nslookup", "c", &gw])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let ip = s.endpoints[0].ipv4.unwrap().to_string();
    assert!(out.contains(&ip), "{out}");
    e.net.teardown(&id).unwrap();
    e.net.forget(&id).unwrap();
}
