//! A CRI client, the kubelet's side of the conversation: gRPC (tonic, `k8s-cri`'s v1 types)
//! over containerd's unix socket. Every call has a deadline and a hung call fails the test
//! with what hung: the bug this suite guards against is a stop or remove that never returns.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerStatus, ContainerStatusRequest, CreateContainerRequest,
    ExecSyncRequest, ExecSyncResponse, ListContainersRequest, ListImagesRequest,
    ListPodSandboxRequest, PodSandboxConfig, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
    VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// How long any one CRI call may take before the test fails.
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// A connected CRI client with its own single-threaded tokio runtime.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connect to the CRI socket (containerd's main socket serves CRI too).
    pub fn connect(sock: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path: PathBuf = sock.to_path_buf();
        let channel = rt.block_on(async move {
            // The URI is required by tonic and ignored by the connector.
            let ep = Endpoint::try_from("http://[::]:50051").map_err(|e| e.to_string())?;
            tokio::time::timeout(
                Duration::from_secs(10),
                ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                })),
            )
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))
        })?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// Run one call to completion or fail with `what` at the deadline.
    fn call<T>(
        rt: &tokio::runtime::Runtime,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        // The timer must be made inside the runtime.
        match rt.block_on(async { tokio::time::timeout(CALL_DEADLINE, fut).await }) {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => panic!("CRI {what} did not return within {CALL_DEADLINE:?}"),
        }
    }

    /// `Version`: the runtime's name and version ("containerd", "1.6.20~ds1").
    pub fn version(&mut self) -> Result<(String, String), tonic::Status> {
        let r = Self::call(
            &self.rt,
            "Version",
            self.runtime.version(VersionRequest::default()),
        )?;
        Ok((r.runtime_name, r.runtime_version))
    }

    /// Image names the CRI plugin knows.
    pub fn image_names(&mut self) -> Result<Vec<String>, tonic::Status> {
        let r = Self::call(
            &self.rt,
            "ListImages",
            self.images.list_images(ListImagesRequest::default()),
        )?;
        Ok(r.images.into_iter().flat_map(|i| i.repo_tags).collect())
    }

    pub fn run_pod(
        &mut self,
        config: &PodSandboxConfig,
        handler: &str,
    ) -> Result<String, tonic::Status> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        let r = Self::call(&self.rt, "RunPodSandbox", self.runtime.run_pod_sandbox(req))?;
        Ok(r.pod_sandbox_id)
    }

    pub fn create_container(
        &mut self,
        pod: &str,
        config: ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        let r = Self::call(
            &self.rt,
            "CreateContainer",
            self.runtime.create_container(req),
        )?;
        Ok(r.container_id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = StartContainerRequest {
            container_id: id.to_string(),
        };
        Self::call(
            &self.rt,
            "StartContainer",
            self.runtime.start_container(req),
        )
        .map(|_| ())
    }

    pub fn status(&mut self, id: &str) -> Result<ContainerStatus, tonic::Status> {
        let req = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        let r = Self::call(
            &self.rt,
            "ContainerStatus",
            self.runtime.container_status(req),
        )?;
        r.status
            .ok_or_else(|| tonic::Status::not_found("no status in the answer"))
    }

    pub fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout_secs: i64,
    ) -> Result<ExecSyncResponse, tonic::Status> {
        let req = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_secs,
        };
        Self::call(&self.rt, "ExecSync", self.runtime.exec_sync(req))
    }

    pub fn stop_container(&mut self, id: &str, timeout_secs: i64) -> Result<(), tonic::Status> {
        let req = StopContainerRequest {
            container_id: id.to_string(),
            timeout: timeout_secs,
        };
        Self::call(&self.rt, "StopContainer", self.runtime.stop_container(req)).map(|_| ())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        Self::call(
            &self.rt,
            "RemoveContainer",
            self.runtime.remove_container(req),
        )
        .map(|_| ())
    }

    pub fn stop_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        Self::call(
            &self.rt,
            "StopPodSandbox",
            self.runtime.stop_pod_sandbox(req),
        )
        .map(|_| ())
    }

    pub fn remove_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        Self::call(
            &self.rt,
            "RemovePodSandbox",
            self.runtime.remove_pod_sandbox(req),
        )
        .map(|_| ())
    }

    /// Ids of every container the CRI plugin lists.
    pub fn container_ids(&mut self) -> Result<Vec<String>, tonic::Status> {
        let r = Self::call(
            &self.rt,
            "ListContainers",
            self.runtime
                .list_containers(ListContainersRequest::default()),
        )?;
        Ok(r.containers.into_iter().map(|c| c.id).collect())
    }

    /// Ids of every pod sandbox the CRI plugin lists.
    pub fn pod_ids(&mut self) -> Result<Vec<String>, tonic::Status> {
        let r = Self::call(
            &self.rt,
            "ListPodSandbox",
            self.runtime
                .list_pod_sandbox(ListPodSandboxRequest::default()),
        )?;
        Ok(r.items.into_iter().map(|p| p.id).collect())
    }
}
