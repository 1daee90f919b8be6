//! What `docker version` shows of the engine: the API versions spoken, and the server's
//! version block in the shape of Docker's `GET /version` (`types.Version`), shared by
//! `hako version` and `hako serve`.

use serde_json::{Value, json};

/// The API version hako speaks (the docker CLI of this machine, 28.2, speaks 1.50).
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted (Docker's absolute minimum).
pub const MIN_API_VERSION: &str = "1.24";

/// Go's name of this build's architecture (`amd64`, `arm64`), as Docker reports it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The server's block: Docker's `types.Version`, its engine as the one component.
pub fn server_version() -> Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": {"Name": "hako"},
        "Components": [{
            "Name": "Engine", "Version": v,
            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux", "Arch": go_arch(), "KernelVersion": kernel,
                        "GitCommit": "", "GoVersion": "", "Experimental": "false", "BuildTime": ""}
        }],
        "Version": v, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": go_arch(),
        "KernelVersion": kernel, "Experimental": false, "BuildTime": "",
    })
}

/// The client's block of `docker version` (the CLI's `clientVersion`): this hako binary.
pub fn client_version() -> Value {
    json!({
        "Platform": {"Name": "hako"},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": std::env::consts::OS, "Arch": go_arch(),
        "BuildTime": "", "Context": "default", "Experimental": false,
    })
}
