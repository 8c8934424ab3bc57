//! A client for the container runtime (containerd) over the CRI, gRPC on a
//! unix socket.
//!
//! The channel connects lazily and reconnects by itself: when containerd goes
//! away, calls fail with `CriError::Unavailable` and succeed again once it is
//! back, so callers only retry.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use cri::{ContainerConfig, ContainerStatus, PodSandboxConfig, PodSandboxStatus};

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("container runtime at {endpoint} is unavailable: {message}")]
    Unavailable { endpoint: String, message: String },
    #[error("{call}: {message}")]
    Call { call: &'static str, code: tonic::Code, message: String },
    #[error("runtime endpoint {0:?} is not unix:///path")]
    BadEndpoint(String),
}

impl CriError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CriError::Call { code: tonic::Code::NotFound, .. })
    }
}

/// How long one CRI call may take; image pulls and container stops get more.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A request with the usual deadline.
fn call<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

#[derive(Clone)]
pub struct CriClient {
    endpoint: String,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

/// The runtime's own view of its health (CRI `Status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeHealth {
    pub runtime_ready: bool,
    pub network_ready: bool,
    pub message: String,
}

/// What ExecSync returned.
#[derive(Clone, Debug)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CriClient {
    /// The socket path of `unix:///path/to/containerd.sock` (or a bare path).
    pub fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
        let path = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
        if !path.is_absolute() {
            return Err(CriError::BadEndpoint(endpoint.into()));
        }
        Ok(path)
    }

    /// A client for the runtime at `endpoint`. Does not connect yet; must be
    /// called inside the tokio runtime.
    pub fn new(endpoint: &str) -> Result<CriClient, CriError> {
        let path = Self::socket_path(endpoint)?;
        // The URI is a placeholder: the connector dials the socket.
        // No channel-wide timeout: each call sets its own deadline (a stop
        // waits for the grace period, a pull for the download).
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(Duration::from_secs(2))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
            }));
        Ok(CriClient {
            endpoint: endpoint.into(),
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    fn error(&self, call: &'static str, status: tonic::Status) -> CriError {
        match status.code() {
            tonic::Code::Unavailable => {
                CriError::Unavailable { endpoint: self.endpoint.clone(), message: status.message().into() }
            }
            code => CriError::Call { call, code, message: status.message().into() },
        }
    }

    /// The runtime's name and version, e.g. `containerd://1.6.20`.
    pub async fn version(&self) -> Result<String, CriError> {
        let r = self
            .runtime
            .clone()
            .version(call(cri::VersionRequest { version: "v1".into() }))
            .await
            .map_err(|e| self.error("Version", e))?
            .into_inner();
        Ok(format!("{}://{}", r.runtime_name, r.runtime_version))
    }

    pub async fn health(&self) -> Result<RuntimeHealth, CriError> {
        let r = self
            .runtime
            .clone()
            .status(call(cri::StatusRequest { verbose: false }))
            .await
            .map_err(|e| self.error("Status", e))?
            .into_inner();
        let mut health = RuntimeHealth::default();
        let mut problems = Vec::new();
        for c in r.status.map(|s| s.conditions).unwrap_or_default() {
            match c.r#type.as_str() {
                "RuntimeReady" => health.runtime_ready = c.status,
                "NetworkReady" => health.network_ready = c.status,
                _ => {}
            }
            if !c.status {
                problems.push(format!("{}: {} {}", c.r#type, c.reason, c.message));
            }
        }
        health.message = problems.join("; ");
        Ok(health)
    }

    /// The image's ID (`sha256:…`) if the runtime has it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, CriError> {
        let r = self
            .images
            .clone()
            .image_status(call(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
                verbose: false,
            }))
            .await
            .map_err(|e| self.error("ImageStatus", e))?
            .into_inner();
        Ok(r.image.map(|i| i.id))
    }

    pub async fn pull_image(&self, image: &str) -> Result<String, CriError> {
        let mut request = tonic::Request::new(cri::PullImageRequest {
            image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
            auth: None,
            sandbox_config: None,
        });
        request.set_timeout(Duration::from_secs(300));
        let r = self.images.clone().pull_image(request).await.map_err(|e| self.error("PullImage", e))?;
        Ok(r.into_inner().image_ref)
    }

    pub async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, CriError> {
        let mut request =
            tonic::Request::new(cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() });
        request.set_timeout(Duration::from_secs(120));
        let r = self.runtime.clone().run_pod_sandbox(request).await.map_err(|e| self.error("RunPodSandbox", e))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    pub async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, CriError> {
        let r = self
            .runtime
            .clone()
            .pod_sandbox_status(call(cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false }))
            .await
            .map_err(|e| self.error("PodSandboxStatus", e))?
            .into_inner();
        r.status.ok_or(CriError::Call {
            call: "PodSandboxStatus",
            code: tonic::Code::Internal,
            message: "no status in the answer".into(),
        })
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        match self
            .runtime
            .clone()
            .stop_pod_sandbox(call(cri::StopPodSandboxRequest { pod_sandbox_id: id.into() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(self.error("StopPodSandbox", e)),
        }
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        match self
            .runtime
            .clone()
            .remove_pod_sandbox(call(cri::RemovePodSandboxRequest { pod_sandbox_id: id.into() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(self.error("RemovePodSandbox", e)),
        }
    }

    /// Sandboxes whose labels include all of `labels`.
    pub async fn list_pod_sandboxes(&self, labels: HashMap<String, String>) -> Result<Vec<cri::PodSandbox>, CriError> {
        let filter = cri::PodSandboxFilter { label_selector: labels, ..Default::default() };
        let r = self
            .runtime
            .clone()
            .list_pod_sandbox(call(cri::ListPodSandboxRequest { filter: Some(filter) }))
            .await
            .map_err(|e| self.error("ListPodSandbox", e))?;
        Ok(r.into_inner().items)
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, CriError> {
        let r = self
            .runtime
            .clone()
            .create_container(call(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            }))
            .await
            .map_err(|e| self.error("CreateContainer", e))?;
        Ok(r.into_inner().container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        self.runtime
            .clone()
            .start_container(call(cri::StartContainerRequest { container_id: id.into() }))
            .await
            .map_err(|e| self.error("StartContainer", e))?;
        Ok(())
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        let mut request =
            tonic::Request::new(cri::StopContainerRequest { container_id: id.into(), timeout: grace.as_secs() as i64 });
        request.set_timeout(grace + Duration::from_secs(30));
        match self.runtime.clone().stop_container(request).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(self.error("StopContainer", e)),
        }
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        match self.runtime.clone().remove_container(call(cri::RemoveContainerRequest { container_id: id.into() })).await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(self.error("RemoveContainer", e)),
        }
    }

    /// Containers (all states) whose labels include all of `labels`.
    pub async fn list_containers(&self, labels: HashMap<String, String>) -> Result<Vec<cri::Container>, CriError> {
        let filter = cri::ContainerFilter { label_selector: labels, ..Default::default() };
        let r = self
            .runtime
            .clone()
            .list_containers(call(cri::ListContainersRequest { filter: Some(filter) }))
            .await
            .map_err(|e| self.error("ListContainers", e))?;
        Ok(r.into_inner().containers)
    }

    pub async fn container_status(&self, id: &str) -> Result<ContainerStatus, CriError> {
        let r = self
            .runtime
            .clone()
            .container_status(call(cri::ContainerStatusRequest { container_id: id.into(), verbose: false }))
            .await
            .map_err(|e| self.error("ContainerStatus", e))?
            .into_inner();
        r.status.ok_or(CriError::Call {
            call: "ContainerStatus",
            code: tonic::Code::Internal,
            message: "no status in the answer".into(),
        })
    }

    /// Runs `cmd` in the container and waits up to `timeout`.
    pub async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecResult, CriError> {
        let mut request = tonic::Request::new(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout.as_secs().max(1) as i64,
        });
        request.set_timeout(timeout + Duration::from_secs(5));
        let r = self.runtime.clone().exec_sync(request).await.map_err(|e| self.error("ExecSync", e))?.into_inner();
        Ok(ExecResult { exit_code: r.exit_code, stdout: r.stdout, stderr: r.stderr })
    }
}
