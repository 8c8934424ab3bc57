//! Just enough of the classic pcap file format (microsecond timestamps,
//! Ethernet link type) to write test input and read DPDK's `tx_pcap` output.

use std::io::{self, Read, Write};
use std::path::Path;

const MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;

pub fn write(path: &Path, frames: &[Vec<u8>]) -> io::Result<()> {
    let mut out = io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&MAGIC.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?; // thiszone
    out.write_all(&0u32.to_le_bytes())?; // sigfigs
    out.write_all(&65_535u32.to_le_bytes())?;
    out.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
    for (i, f) in frames.iter().enumerate() {
        let len = f.len() as u32;
        out.write_all(&(i as u32 / 1_000_000).to_le_bytes())?;
        out.write_all(&(i as u32 % 1_000_000).to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(f)?;
    }
    out.flush()
}

pub fn read(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    if bytes.len() < 24 {
        return Err(bad("shorter than a pcap header"));
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    // DPDK writes microsecond (a1b2c3d4) or nanosecond (a1b23c4d) files.
    if magic != MAGIC && magic != 0xa1b2_3c4d {
        return Err(bad("not a little-endian pcap file"));
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        let frame = bytes.get(at..at + len).ok_or_else(|| bad("truncated record"))?;
        frames.push(frame.to_vec());
        at += len;
    }
    Ok(frames)
}
