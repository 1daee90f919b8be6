//! `state`: the OCI runtime-spec state of one container as JSON.

use std::path::Path;

use serde::Serialize;

use crate::container::Container;
use crate::error::Result;
use crate::state::Status;

/// runtime-spec "State", with runc's extra fields (rootfs, created, owner).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateJson {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

impl StateJson {
    pub fn of(c: &Container) -> StateJson {
        let status = c.status();
        StateJson {
            oci_version: c.st.oci_version.clone(),
            id: c.st.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                c.st.pid
            },
            status,
            bundle: c.st.bundle.display().to_string(),
            rootfs: c.st.rootfs.display().to_string(),
            created: c.st.created.clone(),
            owner: owner_of(&c.dir.dir),
            annotations: c.st.annotations.clone(),
        }
    }
}

/// The user owning the state directory, as runc reports it.
pub fn owner_of(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(dir).map(|m| m.uid()) {
        Ok(0) => "root".into(),
        Ok(uid) => uid.to_string(),
        Err(_) => String::new(),
    }
}

pub fn state(root: &Path, id: &str) -> Result<String> {
    let c = Container::load(root, id)?;
    Ok(serde_json::to_string_pretty(&StateJson::of(&c)).expect("state serializes"))
}
