//! A pod's status as kubelet reports it, computed from what the runtime
//! says (the observation), what the probes say, and why containers wait.

use std::collections::HashMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};

use super::observed::{Instance, Observed};
use super::pod::{DesiredPod, RestartPolicy};
use super::probe::ProbeState;

/// Why a container is not running, as kubelet's waiting reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

pub struct StatusInputs<'a> {
    pub pod: &'a DesiredPod,
    pub observed: &'a Observed,
    pub node_ip: Option<&'a str>,
    /// Probe state of each container's latest instance.
    pub probes: &'a HashMap<String, ProbeState>,
    pub waiting: &'a HashMap<String, Waiting>,
    /// An init container failed under restartPolicy Never.
    pub init_failed: bool,
    pub previous: Option<&'a PodStatus>,
    pub now: SystemTime,
}

pub fn time(t: SystemTime) -> Time {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Time(DateTime::<Utc>::from_timestamp(since.as_secs() as i64, since.subsec_nanos()).unwrap_or_default())
}

fn terminated(i: &Instance) -> ContainerStateTerminated {
    let reason = match i.status.reason.as_str() {
        "" if i.exit_code() == 0 => "Completed".to_string(),
        "" => "Error".to_string(),
        r => r.to_string(),
    };
    ContainerStateTerminated {
        exit_code: i.exit_code(),
        reason: Some(reason),
        message: Some(i.status.message.clone()).filter(|m| !m.is_empty()),
        started_at: i.started_at().map(time),
        finished_at: i.finished_at().map(time),
        container_id: Some(format!("containerd://{}", i.id)),
        signal: None,
    }
}

fn container_status(c: &Container, inputs: &StatusInputs<'_>, init: bool) -> ContainerStatus {
    let latest = inputs.observed.latest(&c.name);
    let waiting = inputs.waiting.get(&c.name);
    let probe = inputs.probes.get(&c.name);
    let waiting_state = |reason: &str, message: &str| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message.to_string()).filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    };
    let (state, last_state) = match latest {
        Some(i) if i.is_running() => (
            ContainerState {
                running: Some(ContainerStateRunning { started_at: i.started_at().map(time) }),
                ..Default::default()
            },
            inputs.observed.previous(&c.name).filter(|p| p.is_exited()).map(terminated),
        ),
        Some(i) if i.is_exited() => match waiting {
            // Exited and about to be restarted: waiting, with the exit as
            // the last state.
            Some(w) => (waiting_state(&w.reason, &w.message), Some(terminated(i))),
            None => (
                ContainerState { terminated: Some(terminated(i)), ..Default::default() },
                inputs.observed.previous(&c.name).filter(|p| p.is_exited()).map(terminated),
            ),
        },
        _ => {
            let w = waiting.cloned().unwrap_or(Waiting {
                reason: if init { "PodInitializing".into() } else { "ContainerCreating".into() },
                message: String::new(),
            });
            (waiting_state(&w.reason, &w.message), None)
        }
    };
    let running = latest.is_some_and(|i| i.is_running());
    let started = running && probe.is_none_or(|p| p.started);
    let ready = if init {
        latest.is_some_and(|i| i.is_exited() && i.exit_code() == 0)
    } else {
        running && probe.is_none_or(|p| p.ready && p.failed.is_none())
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest.map(|i| i.status.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|i| format!("containerd://{}", i.id)),
        restart_count: latest.map_or(0, |i| i.attempt as i32),
        ready,
        started: Some(started),
        state: Some(state),
        last_state: last_state.map(|t| ContainerState { terminated: Some(t), ..Default::default() }),
        ..Default::default()
    }
}

fn phase(inputs: &StatusInputs<'_>, init_done: bool) -> &'static str {
    if inputs.init_failed {
        return "Failed";
    }
    if inputs.observed.sandbox.is_none() || !init_done {
        return "Pending";
    }
    let spec = inputs.pod.spec();
    let latest: Vec<Option<&Instance>> = spec.containers.iter().map(|c| inputs.observed.latest(&c.name)).collect();
    let all_exited = latest.iter().all(|i| i.is_some_and(|i| i.is_exited()));
    let all_zero = latest.iter().all(|i| i.is_some_and(|i| i.exit_code() == 0));
    match inputs.pod.restart_policy {
        RestartPolicy::Never if all_exited => return if all_zero { "Succeeded" } else { "Failed" },
        RestartPolicy::OnFailure if all_exited && all_zero => return "Succeeded",
        _ => {}
    }
    let any_running = latest.iter().any(|i| i.is_some_and(|i| i.is_running()));
    let any_ran = latest.iter().any(|i| i.is_some());
    if any_running || (any_ran && all_exited) {
        "Running"
    } else {
        "Pending"
    }
}

fn qos_class(pod: &DesiredPod) -> &'static str {
    let containers = &pod.spec().containers;
    let (mut any, mut guaranteed) = (false, true);
    for c in containers {
        let r = c.resources.clone().unwrap_or_default();
        let requests = r.requests.unwrap_or_default();
        let limits = r.limits.unwrap_or_default();
        any |= !requests.is_empty() || !limits.is_empty();
        for res in ["cpu", "memory"] {
            let limit = limits.get(res);
            let request = requests.get(res).or(limit);
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's status; condition transition times carry over from `previous`
/// while a condition keeps its status.
pub fn pod_status(inputs: &StatusInputs<'_>) -> PodStatus {
    let spec = inputs.pod.spec();
    let init: Vec<ContainerStatus> =
        spec.init_containers.iter().flatten().map(|c| container_status(c, inputs, true)).collect();
    let containers: Vec<ContainerStatus> = spec.containers.iter().map(|c| container_status(c, inputs, false)).collect();
    let init_done = init.iter().all(|s| s.ready);
    let containers_ready = containers.iter().all(|s| s.ready);
    let phase = phase(inputs, init_done);
    let finished = phase == "Succeeded" || phase == "Failed";

    let previous_conditions = inputs.previous.and_then(|p| p.conditions.clone()).unwrap_or_default();
    let condition = |kind: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let last = previous_conditions.iter().find(|c| c.type_ == kind && c.status == status);
        PodCondition {
            type_: kind.into(),
            status: status.into(),
            reason: if ok { None } else { reason.map(String::from) },
            last_transition_time: last.and_then(|c| c.last_transition_time.clone()).or(Some(time(inputs.now))),
            ..Default::default()
        }
    };
    let ready_reason = if finished { "PodCompleted" } else { "ContainersNotReady" };
    let conditions = vec![
        condition("PodScheduled", true, None),
        condition("Initialized", init_done, Some("ContainersNotInitialized")),
        condition("ContainersReady", containers_ready && !finished, Some(ready_reason)),
        condition("Ready", containers_ready && !finished, Some(ready_reason)),
    ];

    let pod_ip = if inputs.pod.host_network() {
        inputs.node_ip.map(String::from)
    } else {
        inputs.observed.sandbox.as_ref().and_then(|s| s.ip.clone())
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: inputs.node_ip.map(String::from),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: inputs
            .previous
            .and_then(|p| p.start_time.clone())
            .or_else(|| inputs.observed.sandbox.as_ref().map(|s| time(s.created_at))),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(containers),
        qos_class: Some(qos_class(inputs.pod).into()),
        ..Default::default()
    }
}
