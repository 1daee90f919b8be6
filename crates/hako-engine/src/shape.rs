//! Docker's full shape for `inspect`: bollard's models leave out every field that is
//! `None`, Docker prints all of them with their zero value (`""`, `0`, `false`, `{}`,
//! `[]`), and scripts rely on that (`{{.NetworkSettings.IPAddress}}` is empty, not an
//! error; `{{.Config.User}}` is `""`, not `<no value>`). [`container_inspect`] fills in,
//! from Docker 28's output for a container created with no options, every field that is
//! missing; where Docker itself prints `null` (`Entrypoint`, `Volumes`, `OnBuild`,
//! `ExecIDs`, ...) so does this.

use serde_json::Value;

/// A container's `docker inspect` with Docker's zero values where fields are missing.
pub fn container_inspect(v: &mut Value) {
    fill(v, &zero_container());
}

/// `into` gets every key of `zero` it lacks (or holds as `null` where the zero value is
/// not null); objects are merged key by key, anything else is kept as it is.
fn fill(into: &mut Value, zero: &Value) {
    let (Value::Object(dst), Value::Object(src)) = (into, zero) else {
        return;
    };
    for (k, z) in src {
        match dst.get_mut(k) {
            None => {
                dst.insert(k.clone(), z.clone());
            }
            Some(Value::Null) if !z.is_null() => {
                dst.insert(k.clone(), z.clone());
            }
            Some(d) if d.is_object() && z.is_object() => fill(d, z),
            Some(_) => {}
        }
    }
}

fn zero_container() -> Value {
    // Parsed, not `json!`: the macro runs out of recursion on a literal this size.
    serde_json::from_str(ZERO_CONTAINER).unwrap_or(Value::Null)
}

const ZERO_CONTAINER: &str = r#"{
        "Id": "", "Created": "", "Path": "", "Args": [],
        "State": {
            "Status": "", "Running": false, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"
        },
        "Image": "", "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": "",
        "Name": "", "RestartCount": 0, "Driver": "", "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": null,
        "HostConfig": {
            "Binds": null, "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": "", "PortBindings": {},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null,
            "ConsoleSize": [0, 0], "CapAdd": null, "CapDrop": null, "CgroupnsMode": "host",
            "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
            "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "",
            "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
            "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
            "Runtime": "", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
            "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
            "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
            "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
            "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
            "DeviceRequests": null, "MemoryReservation": 0, "MemorySwap": 0,
            "MemorySwappiness": null, "OomKillDisable": false, "PidsLimit": null,
            "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0, "MaskedPaths": [], "ReadonlyPaths": []
        },
        "GraphDriver": {"Data": {}, "Name": ""},
        "Mounts": [],
        "Config": {
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
            "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
            "StdinOnce": false, "Env": [], "Cmd": null, "Image": "", "Volumes": null,
            "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {}
        },
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
            "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {}
        }
    }"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_get_zero_values_and_set_ones_stay() {
        let mut v = json!({"Id": "abc", "Config": {"User": "nobody", "Env": null},
            "HostConfig": {"Memory": 5}, "Extra": 1});
        container_inspect(&mut v);
        assert_eq!(v["Id"], "abc");
        assert_eq!(v["Config"]["User"], "nobody");
        assert_eq!(v["Config"]["Env"], json!([]));
        assert_eq!(v["Config"]["Entrypoint"], Value::Null);
        assert_eq!(v["HostConfig"]["Memory"], 5);
        assert_eq!(v["HostConfig"]["MemorySwap"], 0);
        assert_eq!(v["NetworkSettings"]["IPAddress"], "");
        assert_eq!(v["Extra"], 1);
        assert!(zero_container().is_object(), "the zero value parses");
    }
}
