//! A guard that force-deletes a container when dropped, even when the test panics.

use crate::Runtime;

/// Deletes container `id` (`delete --force`) on Drop unless [`ContainerGuard::disarm`]ed.
#[derive(Debug)]
pub struct ContainerGuard<'a> {
    rt: &'a Runtime,
    id: String,
    armed: bool,
}

impl<'a> ContainerGuard<'a> {
    /// Guard container `id` of runtime `rt`.
    pub fn new(rt: &'a Runtime, id: &str) -> Self {
        Self {
            rt,
            id: id.to_string(),
            armed: true,
        }
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The test deleted the container itself; do nothing on Drop.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        if self.armed && self.rt.status(&self.id).is_some() {
            let _ = self.rt.delete_force(&self.id);
        }
    }
}
