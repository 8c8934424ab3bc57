//! The tables the cores read: Services and their Maglev rings, neighbours,
//! routes, the appliance's own ports — built by the control side into one
//! immutable [`Snapshot`] and published without ever blocking a core.

pub mod addr;
pub mod maglev;
pub mod publish;
pub mod service;
pub mod snapshot;

pub use addr::Addr;
pub use maglev::{MaglevRing, DEFAULT_MAX_RING_SIZE};
pub use publish::{SnapshotPublisher, SnapshotReader};
pub use service::{proto, Backend, BackendState, Service, ServiceKey, ServiceSpec};
pub use snapshot::{NextHop, PortId, PortInfo, Route, Snapshot};
