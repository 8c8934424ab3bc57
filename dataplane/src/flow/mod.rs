//! Per-core flow state: the flow table and the source-port allocator.

pub mod action;
pub mod key;
mod memory;
pub mod ports;
pub mod rewrite;
pub mod table;

pub use action::NatAction;
pub use key::FlowKey;
pub use memory::Placement;
pub use ports::SourcePortAllocator;
pub use rewrite::Ipv4Rewrite;
pub use table::{FlowEntry, FlowState, FlowTable, InsertOutcome, SlotId};
