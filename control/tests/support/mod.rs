//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod appliance;
pub mod containerd;
pub mod lab_client;
pub mod pcap;
