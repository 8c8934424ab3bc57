//! Events the agent reports about pods and the node, with the kubelet's
//! reasons: Pulling, Pulled, Failed, BackOff, Created, Started, Killing,
//! Unhealthy, FailedMount for pods; Starting, NodeReady, NodeNotReady for
//! the node. The agent hands them to a sink the binary provides (the
//! cluster crate writes them to the API server, aggregated and
//! rate-limited); emitting never blocks and never fails.

use tracing::debug;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InvolvedObject {
    /// `Pod` or `Node`.
    pub kind: &'static str,
    /// The pod's namespace; empty for the node.
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEvent {
    pub object: InvolvedObject,
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// Where the agent's events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: AgentEvent);
}

/// Standalone mode: no API server to record events in; they go to the log
/// at debug level.
pub struct LogEvents;

impl EventSink for LogEvents {
    fn emit(&self, e: AgentEvent) {
        debug!(object = %e.object.name, kind = e.object.kind, reason = e.reason, "{}: {}", e.type_.as_str(), e.message);
    }
}
