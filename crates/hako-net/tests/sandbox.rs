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

/// A test that fails half-way leaves nothing mounted under its directories (the
/// namespace files, the spare).
impl Drop for Env {
    fn drop(&mut self) {
        let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut under: Vec<&str> = table
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.exec))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn env() -> Env {
    env_with(None)
}

fn env_with(firewall: Option<hako_net::firewall::Backend>) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = dir.path().join("run");
    let net = Net::open(NetOptions {
        db: dir.path().join("hako.db"),
        exec_root: exec.clone(),
        bridge_name: "hako0".into(),
        bridge_subnet: None,
        mtu: None,
        dns_program: env!("CARGO_BIN_EXE_hako-dns").into(),
        firewall,
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

/// A TCP server answering `hello from NAME` once per connection, in `netns`; killed (its
/// loop and its `nc`) when dropped, also when the test fails before the end.
fn serve(netns: &Path, port: u16, name: &str) -> Server {
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
    Server(c)
}

/// A helper process leading a process group of its own.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // The child's group when it leads one, else the child.
        let c = &mut self.0;
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

/// Links other than `lo` and the default network's bridge (kept once made, as Docker's
/// `docker0`) and `also`, once the kernel has removed the veth pairs of dead namespaces
/// (a worker of its own does, shortly after their teardown): what a test left.
fn links_left(also: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = links()
            .into_iter()
            .filter(|l| l != "lo" && l != "hako0" && !also.contains(&l.as_str()))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The items of the element lists in a listing of hako's table, but the default
/// network's (kept with its bridge).
fn elements_left(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|l| l.split_once("elements = {").map(|(_, r)| r))
        .flat_map(|r| r.trim_end_matches([' ', '}', ',']).split(", "))
        .map(|i| i.trim().to_string())
        .filter(|i| {
            !i.is_empty()
                && !["\"hako0\"", "\"hako0\" . \"hako0\"", "10.77.0.0/16"].contains(&i.as_str())
        })
        .collect()
}

fn links() -> Vec<String> {
    hako_net::netlink::Socket::new()
        .and_then(|mut nl| nl.links())
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect()
}

fn kill(s: Server) {
    drop(s);
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
    let left = links_left(&[]);
    assert!(left.is_empty(), "links left: {left:?}");
    assert!(
        links().contains(&"hako0".to_string()),
        "the default bridge stays"
    );
    assert!(!ns.exists());
    let table = hako_net::firewall::list(e.net.backend().unwrap());
    assert!(elements_left(&table).is_empty(), "elements left: {table}");
    assert!(
        table.contains("10.77.0.0/16"),
        "the default network's stay: {table}"
    );
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
    let bridge = e.net.network("front").unwrap().bridge;
    e.net.remove_network("front").unwrap();
    let left = links_left(&[]);
    assert!(left.is_empty(), "links left: {left:?}");
    assert!(!links().contains(&bridge), "a user network's bridge goes");
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

/// [`nc_in`] retried for a few seconds while it gets nothing: a server's `while ...; do nc
/// -l; done` loop does not listen between two connections. For answers that must come.
fn nc_until(ns: &Path, host: &str, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let got = nc_in(ns, host, port);
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// "Outside": a namespace behind 192.0.2.2 (the test's namespace is 192.0.2.1 on the link),
/// with no route to container subnets: only masqueraded traffic gets answers back.
struct Outside {
    dir: tempfile::TempDir,
    ns: Option<hako_net::netns::Netns>,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns");
        let ns = hako_net::netns::Netns::create(&path).expect("outside netns");
        let mut anchor = Command::new("sleep").arg("60").spawn().unwrap();
        sh(&format!(
            "nsenter --net={o} ip link add hkt-o1 type veth peer name hkt-o0 netns {pid} && \
             nsenter --net={o} sh -c 'ip link set lo up && ip addr add 192.0.2.2/24 dev hkt-o1 && ip link set hkt-o1 up' && \
             ip addr add 192.0.2.1/24 dev hkt-o0 && ip link set hkt-o0 up",
            o = path.display(),
            pid = anchor.id()
        ));
        let _ = anchor.kill();
        let _ = anchor.wait();
        Outside { dir, ns: Some(ns) }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("ns")
    }

    fn remove(mut self) {
        drop(self.ns.take());
        hako_net::netns::remove(&self.path()).expect("remove the outside namespace");
    }
}

/// dockerd's `iptables -P FORWARD DROP` (iptables-nft) in the test's namespace: hako
/// accepts its bridges' traffic ahead of it in a chain of its own, and takes it away with
/// a user network's last container (the default network's stay with its bridge). A drop policy in a native nftables table it cannot override: it
/// names it.
#[test]
fn another_tables_forward_drop_policy() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let n = e
        .net
        .create_network(&NetworkCreate {
            name: "fwd".into(),
            ..Default::default()
        })
        .expect("create");
    let accept = format!("-i {} -j ACCEPT", n.bridge);
    let out = Outside::new();
    let out_ns = out.path();
    let server = serve(&out_ns, 80, "outside");
    // The bridge's first container starts before the drop policy exists (dockerd started
    // later): the next start on the bridge puts the accepts in.
    let early = format!("{}{}", "e".repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &early,
            &[AttachRequest {
                network: "fwd".into(),
                ..Default::default()
            }],
        )
        .unwrap();
    e.net
        .setup(&SetupRequest {
            container: early.clone(),
            name: "early".into(),
            hostname: "early".into(),
            ports: vec![],
            dns: DnsConfig::default(),
            extra_hosts: vec![],
        })
        .expect("setup early");
    assert!(
        !sh("iptables -w -S").contains("HAKO-FORWARD"),
        "nothing drops yet"
    );
    sh("iptables -w -P FORWARD DROP");
    let id = format!("{}{}", "f".repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &id,
            &[AttachRequest {
                network: "fwd".into(),
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
    assert_eq!(nc_until(&ns, "192.0.2.2", 80), "hello from outside", "out");
    assert_eq!(
        nc_until(&e.net.netns_path(&early), "192.0.2.2", 80),
        "hello from outside",
        "out from the container started before the policy"
    );
    let rules = sh("iptables -w -S HAKO-FORWARD");
    assert!(rules.contains(&accept), "{rules}");
    assert!(sh("iptables -w -S FORWARD").contains("-j HAKO-FORWARD"));
    let inside = serve(&ns, 80, "inside");
    assert_eq!(
        nc_until(&out_ns, "192.0.2.1", 8080),
        "hello from inside",
        "a published port from outside"
    );
    // Not routed in directly (Docker's rule too): only DNATed or answering traffic.
    let ip = s.endpoints[0].ipv4.unwrap().to_string();
    sh(&format!(
        "nsenter --net={} ip route add {} via 192.0.2.1",
        out_ns.display(),
        n.v4().unwrap().subnet.trunc()
    ));
    assert_eq!(nc_in(&out_ns, &ip, 80), "", "direct routing stays dropped");
    kill(inside);
    e.net.teardown(&id).expect("teardown");
    assert!(
        sh("iptables -w -S HAKO-FORWARD").contains(&accept),
        "kept while a container is on the bridge"
    );
    e.net.teardown(&early).expect("teardown early");
    e.net.forget(&early).unwrap();
    assert!(
        !sh("iptables -w -S").contains("HAKO-FORWARD"),
        "the chain and its jump go with the last container"
    );
    // A native table's drop: named, not edited.
    sh(
        "nft add table inet hkt && nft add chain inet hkt forward '{ type filter hook forward priority 0; policy drop; }'",
    );
    let b = hako_net::firewall::foreign::blockers(e.net.backend().unwrap(), &n.bridge);
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
    // iptables-legacy's drop (dockerd on a legacy host; hako still on nftables): x_tables,
    // which nftables does not show.
    sh("nft delete table inet hkt && iptables -w -P FORWARD ACCEPT");
    sh("iptables-legacy -w -P FORWARD DROP");
    e.net
        .setup(&SetupRequest {
            container: id.clone(),
            name: "c".into(),
            hostname: "c".into(),
            ports: vec![],
            dns: DnsConfig::default(),
            extra_hosts: vec![],
        })
        .expect("setup with a legacy drop");
    assert_eq!(
        nc_until(&ns, "192.0.2.2", 80),
        "hello from outside",
        "out past iptables-legacy's drop"
    );
    let rules = sh("iptables-legacy -w -S HAKO-FORWARD");
    assert!(rules.contains(&accept), "{rules}");
    e.net.teardown(&id).expect("teardown");
    assert!(
        !sh("iptables-legacy -w -S").contains("HAKO-FORWARD"),
        "the legacy chain and its jump go with the last container"
    );
    e.net.forget(&id).unwrap();
    e.net.remove_network("fwd").unwrap();
    kill(server);
    out.remove();
}

/// A container configured on `network` (its id starts with eight `tag`s, its name is `c`
/// then the tag), with the request that sets up its network.
fn configured_on(e: &Env, network: &str, tag: char) -> (String, SetupRequest) {
    let id = format!("{}{}", tag.to_string().repeat(8), hako_net::random_hex(56));
    e.net
        .configure(
            &id,
            &[AttachRequest {
                network: network.into(),
                ..Default::default()
            }],
        )
        .expect("configure");
    let req = SetupRequest {
        container: id.clone(),
        name: format!("c{tag}"),
        hostname: format!("c{tag}"),
        ports: vec![],
        dns: DnsConfig::default(),
        extra_hosts: vec![],
    };
    (id, req)
}

/// A user network `front` and a container configured on it: what the resolver tests need.
fn on_a_user_network(e: &Env, tag: char) -> (String, SetupRequest) {
    e.net
        .create_network(&NetworkCreate {
            name: "front".into(),
            ..Default::default()
        })
        .expect("create");
    configured_on(e, "front", tag)
}

/// Port 53 taken on a user network's gateway (dnsmasq on 0.0.0.0:53, aardvark-dns #13):
/// the resolver listens on another port there and the start redirects the containers'
/// GW:53 to it; the squatter sees nothing, names resolve, the redirect goes with the
/// network's last container.
#[test]
fn resolver_port_53_taken() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let (id, req) = on_a_user_network(&e, 'd');
    let squatter = std::net::UdpSocket::bind("0.0.0.0:53").expect("bind 0.0.0.0:53");
    squatter.set_nonblocking(true).unwrap();
    let s = e.net.setup(&req).expect("setup with 53 taken");
    let gw = s
        .resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap()
        .to_string();
    let listen = std::fs::read_to_string(hako_net::dns::listen_file(&e.exec)).unwrap();
    let port = listen
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{gw} ")))
        .unwrap_or_else(|| panic!("{gw} on another port: {listen}"))
        .to_string();
    assert_ne!(port, "53");
    let lookup = || {
        let o = Command::new("nsenter")
            .arg(format!("--net={}", e.net.netns_path(&id).display()))
            .args([busybox(), "nslookup", &req.name, &gw])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let ip = s.endpoints[0].ipv4.unwrap().to_string();
    let out = lookup();
    assert!(out.contains(&ip), "{out}");
    let mut buf = [0u8; 512];
    assert!(
        squatter.recv_from(&mut buf).is_err(),
        "the squatter got a query"
    );
    let table = hako_net::firewall::list(e.net.backend().unwrap());
    assert!(
        table.contains(&format!("{gw} . udp . 53 : {gw} . {port}")),
        "{table}"
    );
    drop(s);
    e.net.teardown(&id).unwrap();
    let table = hako_net::firewall::list(e.net.backend().unwrap());
    assert!(!table.contains(" . 53 "), "redirect left: {table}");
    // Once 53 is free, a new resolver takes it again.
    drop(squatter);
    let deadline = Instant::now() + Duration::from_secs(5);
    while hako_net::dns::running(&e.exec).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = e.net.setup(&req).expect("setup once 53 is free");
    let listen = std::fs::read_to_string(hako_net::dns::listen_file(&e.exec)).unwrap();
    assert!(listen.lines().any(|l| l == gw), "{listen}");
    assert!(lookup().contains(&s.endpoints[0].ipv4.unwrap().to_string()));
    e.net.teardown(&id).unwrap();
    e.net.forget(&id).unwrap();
}

/// The iptables driver (where nftables is unusable), with iptables-legacy: nothing of it is
/// in nftables. dockerd's FORWARD drop policy is there too (a Docker user's legacy host).
/// Masquerade out, published ports from loopback, from outside and hairpin, isolation
/// between networks, rules put back after a flush, and nothing of the containers left.
#[test]
fn iptables_driver_ports_masquerade_isolation_and_cleanup() {
    if !root() {
        return;
    }
    sandbox();
    let e = env_with(Some(hako_net::firewall::Backend::Iptables { legacy: true }));
    let out = Outside::new();
    let out_ns = out.path();
    let server = serve(&out_ns, 80, "outside");
    sh("iptables-legacy -w -P FORWARD DROP");
    let start = |id: &str, network: &str, publish: &[&str]| {
        e.net
            .configure(
                id,
                &[AttachRequest {
                    network: network.into(),
                    ..Default::default()
                }],
            )
            .unwrap();
        let mut binds = Vec::new();
        for p in publish {
            binds.extend(ports::parse_publish(p).unwrap());
        }
        e.net
            .setup(&SetupRequest {
                container: id.to_string(),
                name: id[..8].to_string(),
                hostname: id[..8].to_string(),
                ports: ports::wanted(&binds, false, &[]).unwrap(),
                dns: DnsConfig::default(),
                extra_hosts: vec![],
            })
            .expect("setup")
    };
    let id = format!("{}{}", "1".repeat(8), hako_net::random_hex(56));
    let s = start(&id, "bridge", &["8080:80", "127.0.0.1:8081:80"]);
    let ip = s.endpoints[0].ipv4.unwrap();
    let ns = e.net.netns_path(&id);
    assert_eq!(
        nc_until(&ns, "192.0.2.2", 80),
        "hello from outside",
        "masqueraded out"
    );
    let inside = serve(&ns, 80, "inside");
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        fetch((lo, 8080)).trim(),
        "hello from inside",
        "127.0.0.1:8080"
    );
    assert_eq!(
        fetch((lo, 8081)).trim(),
        "hello from inside",
        "127.0.0.1:8081"
    );
    assert_eq!(
        nc_until(&out_ns, "192.0.2.1", 8080),
        "hello from inside",
        "from outside"
    );
    assert_eq!(
        nc_in(&out_ns, "192.0.2.1", 8081),
        "",
        "8081 is on 127.0.0.1 only"
    );
    assert_eq!(
        nc_until(&ns, "192.0.2.1", 8080),
        "hello from inside",
        "hairpin"
    );
    let saved = sh("iptables-legacy-save");
    assert!(
        saved.contains("\"hako:port:tcp:0.0.0.0:8080\" -j DNAT")
            && saved.contains(&format!("--to-destination {ip}:80")),
        "{saved}"
    );
    assert!(
        !sh("nft list tables").contains("hako"),
        "nothing in nftables"
    );
    // Another network: isolated from the bridge, still out; the bridge's rules once.
    e.net
        .create_network(&NetworkCreate {
            name: "other".into(),
            ..Default::default()
        })
        .expect("create");
    // Port 53 taken on the host: the resolver's redirect is a DNAT rule here.
    let squatter = std::net::UdpSocket::bind("0.0.0.0:53").expect("bind 0.0.0.0:53");
    let id3 = format!("{}{}", "3".repeat(8), hako_net::random_hex(56));
    let s3 = start(&id3, "other", &[]);
    let ns3 = e.net.netns_path(&id3);
    let gw3 = s3
        .resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap()
        .to_string();
    let o = Command::new("nsenter")
        .arg(format!("--net={}", ns3.display()))
        .args([busybox(), "nslookup", &id3[..8], &gw3])
        .output()
        .unwrap();
    let ip3 = s3.endpoints[0].ipv4.unwrap().to_string();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&ip3),
        "a name through GW:53 redirected: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(sh("iptables-legacy-save -t nat").contains(&format!("\"hako:port:udp:{gw3}:53\"")));
    assert_eq!(
        nc_until(&ns3, "192.0.2.2", 80),
        "hello from outside",
        "out from other"
    );
    assert_eq!(
        nc_in(&ns3, &ip.to_string(), 80),
        "",
        "isolated from the bridge"
    );
    let id2 = format!("{}{}", "2".repeat(8), hako_net::random_hex(56));
    start(&id2, "bridge", &[]);
    let saved = sh("iptables-legacy-save");
    assert_eq!(saved.matches("\"hako:hako0:in\"").count(), 1, "{saved}");
    assert_eq!(saved.matches("\"hako:jump-filter\"").count(), 1, "{saved}");
    // A flush of the nat table (a firewall reload): the housekeeping pass mends it.
    sh("iptables-legacy -w -t nat -F && iptables-legacy -w -t nat -X");
    assert!(!fetch((lo, 8080)).contains("hello"), "flushed");
    e.net.reconcile().expect("reconcile");
    assert_eq!(fetch((lo, 8080)).trim(), "hello from inside", "mended");
    assert_eq!(
        nc_until(&ns, "192.0.2.2", 80),
        "hello from outside",
        "masquerade mended"
    );
    kill(inside);
    for c in [&id, &id2, &id3] {
        e.net.teardown(c).expect("teardown");
        e.net.forget(c).unwrap();
    }
    e.net.remove_network("other").unwrap();
    drop(squatter);
    let saved = sh("iptables-legacy-save; ip6tables-legacy-save");
    for gone in ["hako:port", "hako:hk-", "DNAT --to"] {
        assert!(!saved.contains(gone), "{gone} left: {saved}");
    }
    // The default network's rules stay with its bridge, as Docker's for docker0.
    assert!(saved.contains("\"hako:hako0:in\""), "{saved}");
    let left = links_left(&["hkt-o0"]);
    assert!(left.is_empty(), "links left: {left:?}");
    kill(server);
    out.remove();
}

/// A bridge `names[0]` (MAC ending in `mac`) and a veth pair `names[1]`–`names[2]` here,
/// the first end its port; the bridge and that end.
fn bridge_with_a_port(
    nl: &mut hako_net::netlink::Socket,
    names: [&str; 3],
    mtu: u32,
    mac: u8,
) -> (hako_net::netlink::Link, hako_net::netlink::Link) {
    let [bridge, host, peer] = names;
    nl.add_bridge(bridge, mtu, [2, 0, 0, 0, 0, mac])
        .expect("bridge");
    let here = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
    nl.add_veth(&hako_net::netlink::VethSpec {
        host,
        peer,
        netns: std::os::fd::AsFd::as_fd(&here),
        mtu,
        peer_mac: None,
    })
    .expect("veth");
    let br = nl.link(bridge).unwrap().expect("bridge made");
    let v = nl.link(host).unwrap().expect("veth made");
    nl.enslave(v.index, host, br.index).expect("enslave");
    (br, v)
}

/// A bridge and its last port go in one request (one unregistration in the kernel), and
/// nothing else in the namespace goes with them: not another bridge, not a link of the
/// default device group.
#[test]
fn links_are_deleted_together_and_nothing_else() {
    if !root() {
        return;
    }
    sandbox();
    let mut nl = hako_net::netlink::Socket::new().expect("netlink");
    nl.add_bridge("keep0", 1500, [2, 0, 0, 0, 0, 0x11])
        .expect("other bridge");
    bridge_with_a_port(&mut nl, ["hkdel0", "hkdelv", "hkdelp"], 1500, 0x10);
    nl.del_links(&["hkdelv", "hkdel0", "missing0"])
        .expect("delete together");
    let mut left: Vec<String> = links().into_iter().filter(|l| l != "lo").collect();
    left.sort();
    // The veth's peer goes with it; the other bridge stays.
    assert_eq!(left, ["keep0"]);
    nl.del_links(&["hkdelv", "hkdel0"]).expect("gone is fine");
    nl.del_link("keep0").unwrap();
}

/// `link` (read from the answer's bytes) finds what the full parse of `links` finds.
#[test]
fn a_link_looked_up_by_name_is_the_listed_one() {
    if !root() {
        return;
    }
    sandbox();
    let mut nl = hako_net::netlink::Socket::new().expect("netlink");
    let (br, _) = bridge_with_a_port(&mut nl, ["hklook0", "hklookv", "hklookp"], 1400, 0x12);
    nl.set_up(br.index, "hklook0").expect("up");
    let listed = nl.links().expect("links");
    for name in ["lo", "hklook0", "hklookv", "hklookp"] {
        let one = nl.link(name).unwrap().expect("found");
        let want = listed.iter().find(|l| l.name == name).expect("listed");
        assert_eq!(&one, want);
    }
    let br = nl.link("hklook0").unwrap().unwrap();
    assert_eq!((br.kind.as_str(), br.mtu, br.up), ("bridge", 1400, true));
    let v = nl.link("hklookv").unwrap().unwrap();
    assert_eq!((v.kind.as_str(), v.master), ("veth", Some(br.index)));
    assert_eq!(nl.link("hklook9").unwrap(), None);
    nl.del_links(&["hklookv", "hklook0"]).expect("delete");
}

/// The resolvers running for `exec` (their command line names it).
fn resolvers(exec: &Path) -> Vec<i32> {
    let want = exec.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie && args.first().is_some_and(|a| a.ends_with("hako-dns")) && args.contains(&want)
        {
            out.push(pid);
        }
    }
    out
}

/// Several containers on user networks starting at once, from separate processes (threads
/// here: the resolver lock is a flock per open, so they exclude each other the same way),
/// get one resolver. (A start used to let go of the lock before the new resolver had
/// written its pid file, so the next start found none and made a second one.)
#[test]
fn starts_at_once_get_one_resolver() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let (id, req) = on_a_user_network(&e, 'e');
    let s = e.net.setup(&req).expect("setup");
    let gw: IpAddr = s
        .resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap()
        .parse()
        .unwrap();
    let db = e._dir.path().join("hako.db");
    let program = Path::new(env!("CARGO_BIN_EXE_hako-dns"));
    for round in 0..5 {
        // No resolver: stop the one there (it removes its files as it goes).
        for pid in resolvers(&e.exec) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !resolvers(&e.exec).is_empty() {
            assert!(Instant::now() < deadline, "round {round}: a resolver stays");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::scope(|t| {
            for _ in 0..6 {
                t.spawn(|| {
                    hako_net::dns::ensure(program, &db, &e.exec, &[gw]).expect("ensure");
                });
            }
        });
        let running = resolvers(&e.exec);
        assert_eq!(running.len(), 1, "round {round}: resolvers {running:?}");
        // The resolver rewrites its pid file at each reload (under the resolver lock, which
        // this unlocked read does not take): it may be caught half-written for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while hako_net::dns::running(&e.exec) != Some(running[0]) {
            assert!(
                Instant::now() < deadline,
                "round {round}: pid file of {running:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(s);
    e.net.teardown(&id).unwrap();
    e.net.forget(&id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !resolvers(&e.exec).is_empty() {
        assert!(Instant::now() < deadline, "hako-dns still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!hako_net::dns::pid_file(&e.exec).exists());
}

/// A container on the default bridge set up and handed back at once: (setup, id).
fn start_on_bridge(e: &Env, tag: char) -> (hako_net::Setup, String) {
    let (id, req) = configured_on(e, "bridge", tag);
    (e.net.setup(&req).expect("setup"), id)
}

fn stop(e: &Env, (s, id): (hako_net::Setup, String)) {
    drop(s);
    e.net.teardown(&id).expect("teardown");
    e.net.forget(&id).expect("forget");
}

/// The handles of the rules in hako's chains (`nft -a`): rebuilt chains get new ones.
fn rule_handles() -> Vec<String> {
    sh("nft -a list table inet hako")
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !["table ", "chain ", "set ", "map "]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .filter_map(|l| l.split("# handle ").nth(1).map(str::to_string))
        .collect()
}

/// A network's first container adds its elements only while hako's rules are in place
/// (marked with a hash of their text); flushed chains, an older hako's rules or a flushed
/// ruleset are rebuilt by the next start, though the process keeps one libnftables context
/// (and its ruleset cache) across all of it. No nf_tables socket of the process reaches a
/// child.
#[test]
fn rules_are_rebuilt_only_when_missing_or_stale() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let first = start_on_bridge(&e, 'a');
    let handles = rule_handles();
    assert!(handles.len() >= 18, "{handles:?}");
    let hostports = || sh("nft list chain inet hako hostports");
    let mark = hostports()
        .split('"')
        .find(|w| w.starts_with("hako-rules-"))
        .expect("the rules' mark")
        .to_string();
    // A child inherits no nf_tables socket (libmnl opens it without close-on-exec).
    let inherited = sh("for f in /proc/$$/fd/*; do readlink $f; done | \
         sed -n 's/^socket:\\[\\(.*\\)\\]$/\\1/p' | while read i; do \
         awk -v i=$i '$2 == 12 && $NF == i' /proc/net/netlink; done");
    assert_eq!(inherited.trim(), "", "nf_tables sockets inherited");
    stop(&e, first);
    assert!(
        sh("nft list set inet hako bridges").contains("\"hako0\""),
        "the default network's elements stay with its bridge"
    );

    // The table stays (by design); the next container changes no rule.
    let again = start_on_bridge(&e, 'b');
    assert_eq!(rule_handles(), handles, "the chains were rebuilt");
    assert!(sh("nft list set inet hako bridges").contains("\"hako0\""));
    stop(&e, again);

    // Chains flushed by someone else: this process's cached ruleset is stale, the kernel's
    // generation tells it so, and the next start puts the rules back.
    sh("nft flush chain inet hako hostports; nft flush chain inet hako postrouting");
    let mended = start_on_bridge(&e, 'c');
    assert!(hostports().contains(&mark), "{}", hostports());
    assert!(sh("nft list chain inet hako postrouting").contains("masquerade"));
    stop(&e, mended);

    // Another hako's rules (an older mark): rebuilt with this one's.
    sh(
        "nft flush chain inet hako hostports; nft add rule inet hako hostports \
        meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4 \
        comment '\"hako-rules-0\"'",
    );
    let newer = start_on_bridge(&e, 'd');
    let l = hostports();
    assert!(l.contains(&mark) && !l.contains("hako-rules-0\""), "{l}");
    assert_eq!(l.matches("@ports4").count(), 1, "{l}");
    stop(&e, newer);

    // No table at all.
    sh("nft delete table inet hako");
    let fresh = start_on_bridge(&e, 'e');
    assert!(hostports().contains(&mark));
    assert!(sh("nft list set inet hako bridges").contains("\"hako0\""));
    stop(&e, fresh);
    let left = links_left(&[]);
    assert!(left.is_empty(), "links left: {left:?}");
    let table = hako_net::firewall::list(e.net.backend().unwrap());
    assert!(elements_left(&table).is_empty(), "elements left: {table}");
}

/// The state (up or down) of a link in this namespace, `None` when it is gone.
fn link_up(name: &str) -> Option<bool> {
    hako_net::netlink::Socket::new()
        .and_then(|mut nl| nl.link(name))
        .expect("look up a link")
        .map(|l| l.up)
}

/// A stopped container's veth pair goes with its namespace: the host end is taken down at
/// the teardown and the kernel removes the pair once the namespace dies. Here the test
/// keeps the namespace alive (as a process still in it would): the host end stays, down,
/// and a restart of the same container (same veth name) replaces it. A namespace that
/// another container joined (`--network container:X`) has its interfaces deleted at once.
#[test]
fn veths_go_with_their_namespace_unless_it_is_shared() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let (id, req) = configured_on(&e, "bridge", 'v');
    let s = e.net.setup(&req).expect("setup");
    let veth = s.endpoints[0].host_veth.clone();
    assert_eq!(link_up(&veth), Some(true));
    let held = std::fs::File::open(e.net.netns_path(&id)).expect("hold the namespace");
    // As the exit command of a shim that saw its container exit.
    let me = i32::try_from(std::process::id()).unwrap();
    let exited = hako_net::driver::Release::WithNamespace;
    drop(s);
    assert!(e.net.teardown_if_owner(&id, me, exited).expect("teardown"));
    assert_eq!(link_up(&veth), Some(false), "down, left to its namespace");

    // A restart while the old pair still exists: made again under the same name.
    let s = e.net.setup(&req).expect("setup again over the old pair");
    assert_eq!(s.endpoints[0].host_veth, veth);
    assert_eq!(link_up(&veth), Some(true), "the new pair is up");
    let ip = s.endpoints[0].ipv4.unwrap();
    let ns = e.net.netns_path(&id);
    let server = serve(&ns, 80, "again");
    assert_eq!(fetch((ip, 80)).trim(), "hello from again", "reachable");
    kill(server);
    drop(held);

    // Shared with a joiner: deleted at the teardown, whoever holds the namespace.
    let held = std::fs::File::open(&ns).expect("hold the namespace");
    e.net.mark_shared(&id).expect("mark shared");
    drop(s);
    assert!(
        e.net
            .teardown_if_owner(&id, me, exited)
            .expect("teardown shared")
    );
    assert_eq!(link_up(&veth), None, "deleted at once");
    assert!(
        std::fs::read_dir(e.exec.join("netns"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "the namespace file and its marker are gone"
    );
    drop(held);
    e.net.forget(&id).unwrap();
    let left = links_left(&[]);
    assert!(left.is_empty(), "links left: {left:?}");
}

/// A kept bridge's elements are added once per nftables ruleset: the next container's start
/// commits nothing while the ruleset's generation is the one they were added at, and any
/// change to the ruleset (here a flush by somebody else) makes the next start add them
/// again, rules and all.
#[test]
fn kept_elements_are_added_again_only_after_the_ruleset_changed() {
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    let generation = hako_net::firewall::generation::generation;
    let g0 = generation().expect("the ruleset's generation");
    sh("nft add table inet hkgen && nft delete table inet hkgen");
    let g1 = generation().unwrap();
    assert!(g1 > g0, "each commit moves it on: {g0} -> {g1}");

    stop(&e, start_on_bridge(&e, 'a'));
    let before = generation().unwrap();
    let again = start_on_bridge(&e, 'b');
    assert_eq!(
        generation().unwrap(),
        before,
        "the second start committed something"
    );
    assert!(sh("nft list set inet hako bridges").contains("\"hako0\""));
    stop(&e, again);

    sh("nft flush ruleset");
    let mended = start_on_bridge(&e, 'c');
    assert!(
        sh("nft list set inet hako bridges").contains("\"hako0\""),
        "elements back"
    );
    assert!(
        sh("nft list chain inet hako postrouting").contains("masquerade"),
        "rules back"
    );
    stop(&e, mended);
    let left = links_left(&[]);
    assert!(left.is_empty(), "links left: {left:?}");
}

/// The `.spare-*` namespace files under `<exec>/netns`, with their namespaces' inodes.
fn spares(exec: &Path) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut found: Vec<(String, u64)> = std::fs::read_dir(exec.join("netns"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    // Only one made: the file exists a moment before the namespace is
                    // bound onto it (its inode then is the empty file's).
                    if !hako_sys::mountinfo::is_mounted(&e.path()) {
                        return None;
                    }
                    let ino = std::fs::metadata(e.path()).ok()?.ino();
                    name.starts_with(".spare-").then_some((name, ino))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Files named as spares, made or half made.
fn spare_files(exec: &Path) -> usize {
    std::fs::read_dir(exec.join("netns")).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".spare-"))
            .count()
    })
}

fn wait_for_spares(exec: &Path, what: &str, ok: impl Fn(&[(String, u64)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(&spares(exec)) {
        assert!(
            Instant::now() < deadline,
            "{what}: spares are {:?}",
            spares(exec)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A long-lived engine keeps one namespace made ahead: a setup adopts it (the container's
/// namespace is that very one), the next is made after the start, and stopping removes it;
/// one left by a process that is gone is removed when the next starts keeping one.
#[test]
fn a_spare_namespace_is_adopted_replenished_and_removed() {
    use std::os::unix::fs::MetadataExt;
    if !root() {
        return;
    }
    sandbox();
    let e = env();
    // A spare of a `hako serve` killed with SIGKILL (a pid above any pid_max).
    let stale = e.exec.join("netns").join(".spare-2147483646-0");
    hako_net::netns::Netns::create(&stale).expect("stale spare");
    let mine = format!(".spare-{}-", std::process::id());

    e.net.keep_spare_namespace();
    wait_for_spares(&e.exec, "the first spare", |s| {
        s.len() == 1 && s[0].0.starts_with(&mine)
    });
    assert!(!stale.exists(), "the dead process's spare is removed");
    let spare = spares(&e.exec)[0].1;

    let (setup, id) = start_on_bridge(&e, 's');
    let ns = std::fs::metadata(e.net.netns_path(&id))
        .expect("netns")
        .ino();
    assert_eq!(ns, spare, "the container's namespace is the spare");
    assert_eq!(spare_files(&e.exec), 0, "taken");
    assert_eq!(link_up(&setup.endpoints[0].host_veth), Some(true));

    e.net.replenish_spare_namespace();
    wait_for_spares(&e.exec, "the next spare", |s| {
        s.len() == 1 && s[0].1 != spare
    });

    // Without a spare ready, a setup makes its namespace as before.
    let next = spares(&e.exec)[0].1;
    let (second, id2) = start_on_bridge(&e, 't');
    let third = start_on_bridge(&e, 'u');
    let ns2 = std::fs::metadata(e.net.netns_path(&id2))
        .expect("netns")
        .ino();
    let ns3 = std::fs::metadata(e.net.netns_path(&third.1))
        .expect("netns")
        .ino();
    assert!(ns2 == next || ns3 == next, "one of them adopted the spare");
    assert_ne!(ns2, ns3);
    stop(&e, third);
    stop(&e, (second, id2));
    stop(&e, (setup, id));

    e.net.drop_spare_namespace();
    assert_eq!(spare_files(&e.exec), 0, "removed at the end");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let exec = e.exec.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&exec)),
        "mounts left under {exec}"
    );
    let left = links_left(&[]);
    assert!(left.is_empty(), "links left: {left:?}");
}
