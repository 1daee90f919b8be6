//! `docker diff`, `docker commit`, `docker container prune` and `docker volume prune` on the
//! engine side.

use std::path::Path;

use hako_image::{Change, CommitOptions, Digest};
use serde_json::{Map, Value, json};

use crate::engine::{Engine, LiveState};
use crate::error::{Error, Result};
use crate::records::Record;
use crate::state::Status;

/// Mount points the runtime makes in every container's layer (Docker keeps them in an
/// "init" layer below the container's, so `diff` never shows them).
const INIT_PATHS: &[&str] = &[
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/.dockerenv",
];

/// The changes without the mount points every container gets (Docker keeps them in an
/// init layer under the container's): the added init paths, and the directories that
/// hold them (`C /etc` after `/etc/hosts` was made) unless something else changed in them.
fn without_init_paths(mut all: Vec<Change>) -> Vec<Change> {
    let is_init = |c: &Change| {
        c.kind == hako_image::ChangeKind::Added && INIT_PATHS.contains(&c.path.as_str())
    };
    let hidden: Vec<String> = all
        .iter()
        .filter(|c| is_init(c))
        .map(|c| c.path.clone())
        .collect();
    all.retain(|c| !is_init(c));
    let under = |dir: &str, p: &str| {
        p.len() > dir.len() + 1 && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
    };
    let holders: Vec<String> = all
        .iter()
        .filter(|c| c.kind != hako_image::ChangeKind::Deleted)
        .filter(|c| hidden.iter().any(|h| under(&c.path, h)))
        .filter(|c| {
            !all.iter()
                .any(|o| under(&c.path, &o.path) && !hidden.contains(&o.path))
        })
        .map(|c| c.path.clone())
        .collect();
    all.retain(|c| !holders.contains(&c.path));
    all.sort();
    all
}

impl Engine {
    /// `docker diff`: the container's changes to its image, sorted by path.
    pub fn changes(&self, what: &str) -> Result<Vec<Change>> {
        let rec = self.get(what)?;
        if !rec.rootfs_managed {
            return Err(Error::InvalidArgument(format!(
                "container {} runs a --rootfs directory: it has no image to compare with",
                &rec.id[..12]
            )));
        }
        let all = self.images().container_changes(&rec.id)?;
        Ok(without_init_paths(all))
    }

    /// `docker commit`: a new image of the container's image, its changes and its
    /// configuration (command, entrypoint, env, workdir, user), under `opts.config` (the
    /// API's body, merged as dockerd merges it), `opts.changes` applied last. A running
    /// container is frozen meanwhile when `opts.pause` is set.
    pub fn commit(&self, what: &str, opts: &CommitOptions) -> Result<Digest> {
        let rec = self.get(what)?;
        if !rec.rootfs_managed {
            return Err(Error::InvalidArgument(format!(
                "container {} runs a --rootfs directory: it has no image to commit on",
                &rec.id[..12]
            )));
        }
        let mut o = opts.clone();
        o.created_by = rec.config.cmd.as_ref().map(|c| c.join(" "));
        o.config = Some(merge_config(
            opts.config.clone().unwrap_or_default(),
            own_config(&rec),
        ));
        let pause = opts.pause && self.live(&rec).status == Status::Running;
        if pause {
            self.pause(&rec.id)?;
        }
        let res = self.images().commit(&rec.id, &o);
        if pause {
            let _ = self.unpause(&rec.id);
        }
        Ok(res?)
    }

    /// `docker container prune`: removes every container that is not running, paused or
    /// restarting and that `keep` does not keep; returns the ids removed and the bytes
    /// their writable layers held. A container that fails to go is reported and skipped.
    pub fn prune_containers(
        &self,
        keep: impl Fn(&Record, &LiveState) -> bool,
    ) -> Result<(Vec<String>, u64, Vec<Error>)> {
        let (mut removed, mut space, mut errors) = (Vec::new(), 0, Vec::new());
        for (rec, live) in self.list()? {
            if live.status.is_active() || keep(&rec, &live) {
                continue;
            }
            let size = self
                .images()
                .container_paths(&rec.id)
                .ok()
                .and_then(|p| {
                    p.get("UpperDir")
                        .map(|u| crate::units::dir_size(Path::new(u)))
                })
                .unwrap_or(0);
            match self.remove(&rec.id, false, false) {
                Ok(_) => {
                    removed.push(rec.id);
                    space += size;
                }
                // Started or removed by another process meanwhile: not prune's to remove.
                Err(Error::IllegalTransition { .. } | Error::NoSuchContainer(_)) => {}
                Err(e) => errors.push(e),
            }
        }
        Ok((removed, space, errors))
    }

    /// `docker volume prune`: removes volumes no container uses, only anonymous ones
    /// unless `all` (Docker 23+), and only those `keep` does not keep.
    pub fn prune_volumes(
        &self,
        all: bool,
        keep: impl Fn(&bollard_stubs::models::Volume) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let (mut removed, mut space) = (Vec::new(), 0);
        for (v, anonymous) in self.volume_list()? {
            if (!all && !anonymous) || keep(&v) || !self.volume_users(&v.name)?.is_empty() {
                continue;
            }
            let size = crate::units::dir_size(Path::new(&v.mountpoint));
            match self.volume_remove(&v.name) {
                Ok(()) => {
                    space += size;
                    removed.push(v.name);
                }
                // Taken by a container created meanwhile.
                Err(Error::VolumeInUse { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, space))
    }
}

/// The container's own config that a commit keeps: command, entrypoint, env, workdir,
/// user (the image's config holds the rest).
fn own_config(rec: &Record) -> Map<String, Value> {
    let c = &rec.config;
    let mut m = Map::new();
    if let Some(env) = &c.env {
        m.insert("Env".into(), json!(env));
    }
    if let Some(ep) = &c.entrypoint {
        m.insert("Entrypoint".into(), json!(ep));
    }
    if let Some(cmd) = &c.cmd {
        m.insert("Cmd".into(), json!(cmd));
    }
    if let Some(w) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        m.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
        m.insert("User".into(), json!(u));
    }
    m
}

/// The fields of a container config that an image config keeps.
const IMAGE_FIELDS: &[&str] = &[
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "OnBuild",
    "Shell",
];

/// dockerd's merge of a commit's config (`user`, the request body) with the container's
/// (`own`): the user's fields win, the container's fill what the user left empty, `Env`
/// by variable; a user's entrypoint comes with the user's command (none if not given).
fn merge_config(user: Map<String, Value>, own: Map<String, Value>) -> Map<String, Value> {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    let mut out: Map<String, Value> = user
        .into_iter()
        .filter(|(k, _)| IMAGE_FIELDS.contains(&k.as_str()))
        .collect();
    for k in ["User", "WorkingDir"] {
        if empty(out.get(k))
            && let Some(v) = own.get(k)
        {
            out.insert(k.into(), v.clone());
        }
    }
    let var = |e: &Value| {
        e.as_str()
            .map(|s| s.split_once('=').map_or(s, |(k, _)| k).to_string())
    };
    if let Some(theirs) = own.get("Env") {
        match out.get_mut("Env") {
            Some(Value::Array(mine)) if !mine.is_empty() => {
                let names: Vec<_> = mine.iter().map(var).collect();
                let more = theirs.as_array().into_iter().flatten();
                let more: Vec<Value> = more.filter(|e| !names.contains(&var(e))).cloned().collect();
                mine.extend(more);
            }
            _ => {
                out.insert("Env".into(), theirs.clone());
            }
        }
    }
    if empty(out.get("Entrypoint")) {
        if empty(out.get("Cmd"))
            && let Some(cmd) = own.get("Cmd")
        {
            out.insert("Cmd".into(), cmd.clone());
        }
        if matches!(out.get("Entrypoint"), None | Some(Value::Null))
            && let Some(ep) = own.get("Entrypoint")
        {
            out.insert("Entrypoint".into(), ep.clone());
        }
    } else {
        out.entry("Cmd").or_insert(Value::Null);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(kind: char, path: &str) -> Change {
        let kind = match kind {
            'A' => hako_image::ChangeKind::Added,
            'C' => hako_image::ChangeKind::Modified,
            _ => hako_image::ChangeKind::Deleted,
        };
        Change {
            path: path.into(),
            kind,
        }
    }

    #[test]
    fn init_paths_and_the_directories_holding_only_them_are_not_changes() {
        let shown = |v: Vec<Change>| {
            without_init_paths(v)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        // Only the mount points: nothing changed.
        let mounts = vec![
            ch('C', "/etc"),
            ch('A', "/etc/hosts"),
            ch('A', "/etc/hostname"),
            ch('A', "/etc/resolv.conf"),
            ch('A', "/.dockerenv"),
        ];
        assert_eq!(shown(mounts.clone()), Vec::<String>::new());
        // Something else in /etc keeps it changed; other directories are untouched.
        let mut more = mounts;
        more.extend([ch('A', "/etc/app.conf"), ch('C', "/var"), ch('D', "/var/x")]);
        assert_eq!(
            shown(more),
            ["C /etc", "A /etc/app.conf", "C /var", "D /var/x"]
        );
        // An image without /etc: the added /etc holding only mount points goes too.
        assert_eq!(
            shown(vec![ch('A', "/etc"), ch('A', "/etc/hosts"), ch('A', "/d")]),
            ["A /d"]
        );
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_commit_config_merges_as_dockerd() {
        let own = map(json!({
            "Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Entrypoint": ["/init"],
            "WorkingDir": "/w", "User": "1"
        }));
        // Nothing given: the container's own.
        assert_eq!(merge_config(Map::new(), own.clone()), own);
        // Env by variable, the user's first; other fields filled; container-only fields dropped.
        let m = merge_config(
            map(json!({"Env": ["A=2", "B=3"], "Labels": {"l": "v"}, "Hostname": "h", "User": ""})),
            own.clone(),
        );
        assert_eq!(m["Env"], json!(["A=2", "B=3", "PATH=/bin"]));
        assert_eq!(m["Labels"], json!({"l": "v"}));
        assert_eq!((&m["User"], &m["WorkingDir"]), (&json!("1"), &json!("/w")));
        assert!(!m.contains_key("Hostname"));
        assert_eq!(
            (&m["Cmd"], &m["Entrypoint"]),
            (&json!(["sh"]), &json!(["/init"]))
        );
        // A command alone keeps the entrypoint; an entrypoint brings its own command.
        let m = merge_config(map(json!({"Cmd": ["echo", "hi"]})), own.clone());
        assert_eq!(
            (&m["Cmd"], &m["Entrypoint"]),
            (&json!(["echo", "hi"]), &json!(["/init"]))
        );
        let m = merge_config(map(json!({"Entrypoint": ["/bin/echo"]})), own.clone());
        assert_eq!(
            (&m["Cmd"], &m["Entrypoint"]),
            (&Value::Null, &json!(["/bin/echo"]))
        );
        // An empty (not null) entrypoint clears it.
        let m = merge_config(map(json!({"Entrypoint": []})), own);
        assert_eq!((&m["Cmd"], &m["Entrypoint"]), (&json!(["sh"]), &json!([])));
    }
}
