//! `docker network ...` (the stock CLI) through `hako serve`: create with IPAM and labels,
//! ls filters, inspect, connect with an alias and a fixed address, disconnect, rm refused
//! while in use, prune with filters, network events; the same networks seen by `hako`.

mod common;

use common::Hako;
use common::serve::{Server, have_docker};

fn lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort_unstable();
    v
}

#[test]
fn docker_network_commands_through_hako_serve() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let n1 = s
        .ok(&[
            "network",
            "create",
            "--label",
            "team=a",
            "--subnet",
            "10.231.7.0/24",
            "--gateway",
            "10.231.7.1",
            "front",
        ])
        .trim()
        .to_string();
    assert_eq!(n1.len(), 64, "{n1}");
    s.ok(&["network", "create", "--label", "team=b", "spare"]);
    let o = s.run(&["network", "create", "front"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("network with name front already exists"),
        "{o:?}"
    );
    // The same store: hako's own CLI sees the networks made through the API.
    assert!(h.ok(&["network", "ls"]).contains("spare"));

    // ls and its filters (the CLI sends them as the filters JSON).
    let names = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(lines(&names), ["bridge", "front", "host", "none", "spare"]);
    let ls = |f: &str| s.ok(&["network", "ls", "--filter", f, "--format", "{{.Name}}"]);
    assert_eq!(ls("label=team=a").trim(), "front");
    assert_eq!(ls("label=team").lines().count(), 2);
    assert_eq!(lines(&ls("type=custom")), ["front", "spare"]);
    assert_eq!(lines(&ls("type=builtin")), ["bridge", "host", "none"]);
    assert_eq!(ls("name=fro").trim(), "front");
    assert_eq!(ls(&format!("id={}", &n1[..12])).trim(), "front");
    assert_eq!(ls("driver=null").trim(), "none");
    let o = s.run(&["network", "ls", "--filter", "colour=red"]);
    assert!(!o.status.success(), "a bad filter is refused");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("colour"),
        "{o:?}"
    );

    // inspect
    let subnet = s.ok(&[
        "network",
        "inspect",
        "front",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} {{.Driver}} {{.Labels.team}}",
    ]);
    assert_eq!(subnet.trim(), "10.231.7.0/24 10.231.7.1 bridge a");
    let o = s.run(&["network", "inspect", "nope"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not found"),
        "{o:?}"
    );

    // Containers: one made on the network (NetworkingConfig with an alias), one connected
    // later with an alias and a fixed address, reached by name from the first.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "front",
        "--network-alias",
        "api",
        "busybox",
        "sleep",
        "1000",
    ]);
    s.ok(&["run", "-d", "--name", "b1", "busybox", "sleep", "1000"]);
    s.ok(&[
        "network",
        "connect",
        "--alias",
        "web",
        "--ip",
        "10.231.7.50",
        "front",
        "b1",
    ]);
    let ip = s.ok(&[
        "inspect",
        "b1",
        "--format",
        "{{.NetworkSettings.Networks.front.IPAddress}}",
    ]);
    assert_eq!(ip.trim(), "10.231.7.50");
    s.ok(&["exec", "a1", "ping", "-c", "1", "-W", "5", "web"]);
    // The alias given at create (NetworkingConfig), from a third container on the network
    // (b1 joined after its start: like Docker's, its resolv.conf is the default bridge's).
    s.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "api",
    ]);
    let members = s.ok(&[
        "network",
        "inspect",
        "front",
        "--format",
        "{{range .Containers}}{{.Name}} {{end}}",
    ]);
    let mut members: Vec<&str> = members.split_whitespace().collect();
    members.sort_unstable();
    assert_eq!(members, ["a1", "b1"]);
    assert_eq!(ls("dangling=true").trim(), "spare");

    // rm refused while in use; prune keeps used networks and honours its filters.
    let o = s.run(&["network", "rm", "front"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has active endpoints"),
        "{o:?}"
    );
    let o = s.run(&["network", "rm", "bridge"]);
    assert!(!o.status.success(), "the default bridge cannot be removed");
    let kept = s.ok(&["network", "prune", "-f", "--filter", "label=team=a"]);
    assert!(!kept.contains("front"), "{kept}");
    assert!(h.ok(&["network", "ls"]).contains("spare"));

    s.ok(&["network", "disconnect", "front", "b1"]);
    let o = s.run(&["exec", "b1", "ip", "-4", "addr"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("10.231.7.50"),
        "{o:?}"
    );
    let o = s.run(&["network", "disconnect", "front", "b1"]);
    assert!(!o.status.success(), "not connected any more");
    let o = s.run(&["network", "connect", "front", "ghost"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container"),
        "{o:?}"
    );

    let pruned = s.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("Deleted Networks:") && pruned.contains("spare"),
        "{pruned}"
    );
    assert!(!pruned.contains("front"), "{pruned}");
    s.ok(&["rm", "-f", "a1", "b1"]);
    s.ok(&["network", "rm", "front"]);
    assert_eq!(lines(&ls("type=custom")), Vec::<&str>::new());

    // Events of all of it, through /events (the CLI sends `--until 0s` as whole seconds:
    // let this second pass).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let evs = s.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    for want in [
        "create front",
        "create spare",
        "connect front",
        "disconnect front",
        "destroy spare",
        "destroy front",
    ] {
        assert!(evs.lines().any(|l| l == want), "{want} in:\n{evs}");
    }
    drop(s);
    h.finish(&[]);
}
