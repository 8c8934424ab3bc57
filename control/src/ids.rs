//! Stable identifiers derived from content.

use dataplane::hash::hash_bytes;

/// 128 bits of a stable hash of `bytes`, as 32 hex digits (the shape of a
/// Kubernetes UID without dashes, as kubelet's static pod UIDs).
pub fn hash_hex(bytes: &[u8]) -> String {
    format!("{:016x}{:016x}", hash_bytes(bytes, 0x7374_6174_6963), hash_bytes(bytes, 0x706f_6473))
}
