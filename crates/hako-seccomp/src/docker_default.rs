pub const DOCKER_DEFAULT_CAPABILITIES: &[&str] = &[];
pub fn docker_default_profile(_c: &[String]) -> oci_spec::runtime::LinuxSeccomp { todo!() }
