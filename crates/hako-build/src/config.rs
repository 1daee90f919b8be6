//! The image config a build produces (OCI image config with Docker's fields), typed
//! where the builder writes and passed through where it does not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `Healthcheck` of a container config (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Per check.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Grace period at start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Between checks during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The `config` part: what a container of the image starts with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE` (`"80/tcp": {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `ENV` as `K=V`, in order of first definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Health>,
    /// `VOLUME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WORKDIR`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `ONBUILD` triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// `LABEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// `SHELL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields the builder does not touch.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment (`buildkit.dockerfile.v0` for BuildKit, `hako.build` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// `rootfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default = "layers")]
    pub kind: String,
    /// Diff ids, base first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

fn layers() -> String {
    "layers".into()
}

/// A whole image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Container defaults.
    #[serde(default)]
    pub config: ContainerConfig,
    /// Layers.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per instruction (and per base image step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The history comment of steps hako built.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

impl ImageConfig {
    /// An empty image (`FROM scratch`) for `os/arch`.
    pub fn scratch(os: &str, arch: &str, variant: Option<&str>) -> ImageConfig {
        ImageConfig {
            architecture: arch.into(),
            os: os.into(),
            variant: variant.map(str::to_string),
            rootfs: RootFs {
                kind: layers(),
                diff_ids: Vec::new(),
            },
            config: ContainerConfig {
                env: Some(vec![format!("PATH={}", DEFAULT_PATH)]),
                ..ContainerConfig::default()
            },
            ..ImageConfig::default()
        }
    }

    /// The `Env` list as pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .flatten()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    }

    /// Sets `key` in `Env`, in place if it is there, else at the end.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let list = self.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match list
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = entry,
            None => list.push(entry),
        }
    }

    /// The shell for shell-form commands (`SHELL`, default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        match &self.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    /// `WorkingDir`, `/` when unset.
    pub fn workdir(&self) -> &str {
        if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        }
    }

    /// Appends a history entry.
    pub fn add_history(&mut self, created_by: String, empty_layer: bool) {
        self.history.push(History {
            created: None,
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer,
        });
    }
}

/// `PATH` of a scratch image, as Docker sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
