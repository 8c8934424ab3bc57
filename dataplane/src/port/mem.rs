//! An in-memory port for tests and benches: packets come from a replayed
//! list or a queue the test fills, and go to a capture queue or straight
//! back to the buffer pool.

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use super::{BufPool, PacketBuf, PortQueue, BURST};

/// Room in each buffer, as in an mbuf's default data room.
pub const BUF_SIZE: usize = 2048;

type Room = Box<[u8; BUF_SIZE]>;

/// A fixed set of buffers shared by the in-memory ports (like a mempool).
pub type MemPool = Arc<ArrayQueue<Room>>;

pub fn mem_pool(buffers: usize) -> MemPool {
    let pool = ArrayQueue::new(buffers.max(1));
    for _ in 0..buffers {
        let _ = pool.push(Box::new([0; BUF_SIZE]));
    }
    Arc::new(pool)
}

/// A packet buffer from a [`MemPool`]; dropping it gives its room back.
pub struct MemBuf {
    /// Always `Some` until dropped.
    room: Option<Room>,
    len: usize,
    pool: MemPool,
}

impl MemBuf {
    fn take(pool: &MemPool, bytes: &[u8]) -> Option<MemBuf> {
        let mut room = pool.pop()?;
        let len = bytes.len().min(BUF_SIZE);
        room[..len].copy_from_slice(&bytes[..len]);
        Some(MemBuf { room: Some(room), len, pool: pool.clone() })
    }
}

impl Drop for MemBuf {
    fn drop(&mut self) {
        if let Some(room) = self.room.take() {
            let _ = self.pool.push(room);
        }
    }
}

impl PacketBuf for MemBuf {
    fn data(&self) -> &[u8] {
        match &self.room {
            Some(room) => &room[..self.len],
            None => &[],
        }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        match &mut self.room {
            Some(room) => &mut room[..self.len],
            None => &mut [],
        }
    }
}

/// Where received packets come from.
pub enum Source {
    /// These frames, round and round, forever (like pcap's infinite_rx).
    Replay { frames: Vec<Vec<u8>>, next: usize },
    /// Frames a test pushes; empty means nothing to receive.
    Queue(Arc<ArrayQueue<Vec<u8>>>),
    /// Nothing.
    None,
}

/// Where transmitted packets go.
pub enum Sink {
    /// Back to the pool at once (benches).
    Discard,
    /// Copied to a queue the test reads; full means the port refuses.
    Capture(Arc<ArrayQueue<Vec<u8>>>),
}

pub struct MemQueue {
    pool: MemPool,
    source: Source,
    sink: Sink,
}

impl MemQueue {
    pub fn new(pool: MemPool, source: Source, sink: Sink) -> MemQueue {
        MemQueue { pool, source, sink }
    }
}

impl PortQueue for MemQueue {
    type Buf = MemBuf;

    fn rx_burst(&mut self, bufs: &mut Vec<MemBuf>) -> usize {
        let room = (bufs.capacity() - bufs.len()).min(BURST);
        let mut received = 0;
        while received < room {
            let frame: &[u8];
            let owned;
            match &mut self.source {
                Source::Replay { frames, next } => {
                    if frames.is_empty() {
                        break;
                    }
                    frame = &frames[*next];
                    *next = (*next + 1) % frames.len();
                }
                Source::Queue(q) => match q.pop() {
                    Some(f) => {
                        owned = f;
                        frame = &owned;
                    }
                    None => break,
                },
                Source::None => break,
            }
            let Some(buf) = MemBuf::take(&self.pool, frame) else { break };
            bufs.push(buf);
            received += 1;
        }
        received
    }

    fn tx_burst(&mut self, bufs: &mut Vec<MemBuf>) -> usize {
        let mut sent = 0;
        for buf in bufs.iter() {
            if let Sink::Capture(q) = &self.sink {
                if q.push(buf.data().to_vec()).is_err() {
                    break;
                }
            }
            sent += 1;
        }
        // Dropping gives the rooms back to the pool.
        bufs.drain(..sent);
        sent
    }
}

impl BufPool for MemPool {
    type Buf = MemBuf;

    fn alloc_from(&self, bytes: &[u8]) -> Option<MemBuf> {
        (bytes.len() <= BUF_SIZE).then(|| MemBuf::take(self, bytes)).flatten()
    }
}
