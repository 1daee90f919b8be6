//! `config.json` generator: starts from `oci_spec::runtime::Spec::default()` (the same shape
//! as `runc spec`) and tweaks it through small builder helpers.
//!
//! The config is held as JSON rather than a typed `Spec` so tests can also write configs a
//! typed spec cannot express (unknown namespace types, missing fields) for bad-input cases.

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

/// A container configuration under construction. Defaults: `runc spec` plus
/// `terminal: false`, hostname `hako`, args `["true"]`.
#[derive(Debug, Clone)]
pub struct Config {
    json: Value,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// Get (creating as needed) the object or array at a `/`-separated path.
fn at<'a>(root: &'a mut Value, path: &str, leaf: Value) -> &'a mut Value {
    let mut cur = root;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("object");
        let default = if i + 1 == parts.len() {
            leaf.clone()
        } else {
            json!({})
        };
        cur = map.entry(part.to_string()).or_insert(default);
        if cur.is_null() {
            *cur = if i + 1 == parts.len() {
                leaf.clone()
            } else {
                json!({})
            };
        }
    }
    cur
}

impl Config {
    /// The default configuration.
    pub fn new() -> Self {
        let spec = Spec::default();
        let mut json = serde_json::to_value(&spec).expect("Spec serializes");
        json["hostname"] = json!("hako");
        json["process"]["terminal"] = json!(false);
        json["process"]["args"] = json!(["true"]);
        // The default sets no annotations; drop the empty map for a runc-like shape.
        if json
            .get("annotations")
            .is_some_and(|a| a.as_object().is_some_and(|m| m.is_empty()))
        {
            json.as_object_mut().expect("object").remove("annotations");
        }
        Self { json }
    }

    /// The JSON that will be written.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Raw access for tweaks no helper covers.
    pub fn json_mut(&mut self) -> &mut Value {
        &mut self.json
    }

    /// Parse back into a typed spec (for assertions against the config's own values).
    pub fn spec(&self) -> anyhow::Result<Spec> {
        Ok(serde_json::from_value(self.json.clone())?)
    }

    /// Apply an arbitrary edit to the JSON.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.json);
        self
    }

    /// `process.args`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.json["process"]["args"] = json!(args);
        self
    }

    /// `process.args = ["sh", "-c", script]`.
    pub fn sh(self, script: &str) -> Self {
        self.args(&["sh", "-c", script])
    }

    /// `hostname`.
    pub fn hostname(mut self, name: &str) -> Self {
        self.json["hostname"] = json!(name);
        self
    }

    /// `domainname`.
    pub fn domainname(mut self, name: &str) -> Self {
        self.json["domainname"] = json!(name);
        self
    }

    /// Append `KEY=VALUE` to `process.env`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.push_env_raw(&format!("{key}={value}"));
        self
    }

    pub(crate) fn push_env_raw(&mut self, kv: &str) {
        let env = at(&mut self.json, "process/env", json!([]));
        if let Some(list) = env.as_array_mut() {
            list.push(json!(kv));
        }
    }

    /// `process.cwd`.
    pub fn cwd(mut self, cwd: &str) -> Self {
        self.json["process"]["cwd"] = json!(cwd);
        self
    }

    /// `process.terminal`.
    pub fn terminal(mut self, on: bool) -> Self {
        self.json["process"]["terminal"] = json!(on);
        self
    }

    /// `process.user` uid, gid and additionalGids.
    pub fn user(mut self, uid: u32, gid: u32, additional_gids: &[u32]) -> Self {
        let user = at(&mut self.json, "process/user", json!({}));
        user["uid"] = json!(uid);
        user["gid"] = json!(gid);
        if additional_gids.is_empty() {
            if let Some(map) = user.as_object_mut() {
                map.remove("additionalGids");
            }
        } else {
            user["additionalGids"] = json!(additional_gids);
        }
        self
    }

    /// `process.user.umask`.
    pub fn umask(mut self, umask: u32) -> Self {
        at(&mut self.json, "process/user", json!({}))["umask"] = json!(umask);
        self
    }

    /// Set (replace) one rlimit, e.g. `rlimit("RLIMIT_NOFILE", 512, 512)`.
    pub fn rlimit(mut self, typ: &str, soft: u64, hard: u64) -> Self {
        let list = at(&mut self.json, "process/rlimits", json!([]));
        if let Some(list) = list.as_array_mut() {
            list.retain(|r| r["type"] != typ);
            list.push(json!({"type": typ, "soft": soft, "hard": hard}));
        }
        self
    }

    /// Set one capability set (`bounding`, `effective`, `inheritable`, `permitted`, `ambient`).
    pub fn caps(mut self, set: &str, caps: &[&str]) -> Self {
        at(&mut self.json, "process/capabilities", json!({}))[set] = json!(caps);
        self
    }

    /// Set all five capability sets to the same list.
    pub fn all_caps(mut self, caps: &[&str]) -> Self {
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            self = self.caps(set, caps);
        }
        self
    }

    /// `process.noNewPrivileges`.
    pub fn no_new_privileges(mut self, on: bool) -> Self {
        self.json["process"]["noNewPrivileges"] = json!(on);
        self
    }

    /// `process.oomScoreAdj`.
    pub fn oom_score_adj(mut self, adj: i32) -> Self {
        self.json["process"]["oomScoreAdj"] = json!(adj);
        self
    }

    /// `root.readonly`.
    pub fn readonly_root(mut self, on: bool) -> Self {
        self.json["root"]["readonly"] = json!(on);
        self
    }

    /// Append a mount.
    pub fn mount(mut self, destination: &str, typ: &str, source: &str, options: &[&str]) -> Self {
        let mounts = at(&mut self.json, "mounts", json!([]));
        if let Some(list) = mounts.as_array_mut() {
            list.push(json!({
                "destination": destination, "type": typ, "source": source, "options": options,
            }));
        }
        self
    }

    /// Append a bind mount of a host path.
    pub fn bind(self, host: &str, destination: &str, readonly: bool) -> Self {
        let opts: &[&str] = if readonly {
            &["rbind", "ro"]
        } else {
            &["rbind", "rw"]
        };
        self.mount(destination, "bind", host, opts)
    }

    /// Add a namespace (new, or joined when `path` is given), replacing one of the same type.
    pub fn namespace(mut self, typ: &str, path: Option<&str>) -> Self {
        let list = at(&mut self.json, "linux/namespaces", json!([]));
        if let Some(list) = list.as_array_mut() {
            list.retain(|n| n["type"] != typ);
            let mut ns = json!({"type": typ});
            if let Some(path) = path {
                ns["path"] = json!(path);
            }
            list.push(ns);
        }
        self
    }

    /// Remove a namespace type.
    pub fn without_namespace(mut self, typ: &str) -> Self {
        if let Some(list) = at(&mut self.json, "linux/namespaces", json!([])).as_array_mut() {
            list.retain(|n| n["type"] != typ);
        }
        self
    }

    /// A user namespace mapping container ids `0..size` to host ids `host..host+size`.
    pub fn userns(self, host_uid: u32, host_gid: u32, size: u32) -> Self {
        self.namespace("user", None).edit(|j| {
            j["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": host_uid, "size": size}]);
            j["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": host_gid, "size": size}]);
        })
    }

    /// `linux.sysctl[key] = value`.
    pub fn sysctl(mut self, key: &str, value: &str) -> Self {
        at(&mut self.json, "linux/sysctl", json!({}))[key] = json!(value);
        self
    }

    /// `linux.maskedPaths`.
    pub fn masked_paths(mut self, paths: &[&str]) -> Self {
        self.json["linux"]["maskedPaths"] = json!(paths);
        self
    }

    /// `linux.readonlyPaths`.
    pub fn readonly_paths(mut self, paths: &[&str]) -> Self {
        self.json["linux"]["readonlyPaths"] = json!(paths);
        self
    }

    /// `linux.cgroupsPath`.
    pub fn cgroups_path(mut self, path: &str) -> Self {
        self.json["linux"]["cgroupsPath"] = json!(path);
        self
    }

    /// Append a `linux.devices` entry (and allow it in the device cgroup).
    pub fn device(mut self, path: &str, typ: &str, major: i64, minor: i64, mode: u32) -> Self {
        let list = at(&mut self.json, "linux/devices", json!([]));
        if let Some(list) = list.as_array_mut() {
            list.push(json!({
                "path": path, "type": typ, "major": major, "minor": minor,
                "fileMode": mode, "uid": 0, "gid": 0,
            }));
        }
        let rules = at(&mut self.json, "linux/resources/devices", json!([]));
        if let Some(rules) = rules.as_array_mut() {
            rules.push(json!({
                "allow": true, "type": typ, "major": major, "minor": minor, "access": "rwm",
            }));
        }
        self
    }

    /// Append a hook of `kind` (`prestart`, `createRuntime`, `createContainer`,
    /// `startContainer`, `poststart`, `poststop`).
    pub fn hook(mut self, kind: &str, path: &str, args: &[&str], timeout: Option<u32>) -> Self {
        let list = at(&mut self.json, &format!("hooks/{kind}"), json!([]));
        if let Some(list) = list.as_array_mut() {
            let mut hook = json!({"path": path, "args": args});
            if let Some(t) = timeout {
                hook["timeout"] = json!(t);
            }
            list.push(hook);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_looks_like_runc_spec() {
        let c = Config::new();
        let j = c.json();
        assert_eq!(j["root"]["path"], "rootfs");
        assert_eq!(j["process"]["terminal"], false);
        assert!(
            j["mounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["type"] == "proc"))
        );
        assert!(
            j["linux"]["maskedPaths"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        c.spec().expect("default config parses as a typed Spec");
    }

    #[test]
    fn helpers_edit_the_json() {
        let c = Config::new()
            .sh("echo hi")
            .hostname("box")
            .user(1000, 1000, &[5, 65534])
            .rlimit("RLIMIT_NOFILE", 100, 200)
            .namespace("network", Some("/run/netns/x"))
            .sysctl("kernel.domainname", "d")
            .hook("prestart", "/bin/true", &["true"], Some(3));
        let j = c.json();
        assert_eq!(j["process"]["args"][2], "echo hi");
        assert_eq!(j["hostname"], "box");
        assert_eq!(j["process"]["user"]["additionalGids"][1], 65534);
        let nofile: Vec<_> = j["process"]["rlimits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == "RLIMIT_NOFILE")
            .collect();
        assert_eq!(nofile.len(), 1);
        assert_eq!(nofile[0]["hard"], 200);
        let net: Vec<_> = j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "network")
            .collect();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0]["path"], "/run/netns/x");
        assert_eq!(j["hooks"]["prestart"][0]["timeout"], 3);
        c.spec().expect("still a valid spec");
    }
}
