//! A UDP echo server that says which pod it is, for the lab's UDP Service
//! (busybox has no UDP server applet). Std only, built statically by
//! scripts/lab/build-images into the image switchyard.local/udp-echo:1:
//!
//!     udp-echo [PORT]          (default 5353)
//!
//! Each datagram is answered, to its sender, with `$POD_NAME ` followed by
//! the datagram's bytes. It runs until killed (as a container's pid 1 it
//! ignores SIGTERM: the grace period ends it).

use std::net::{Ipv4Addr, UdpSocket};
use std::process::ExitCode;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 5353,
        Some(Ok(port)) => port,
        Some(Err(e)) => {
            eprintln!("udp-echo: bad port: {e}");
            return ExitCode::from(2);
        }
    };
    let name = std::env::var("POD_NAME").unwrap_or_else(|_| "unnamed".into());
    let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-echo: bind port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("udp-echo: {name} on UDP port {port}");
    let mut datagram = [0u8; 2048];
    let mut reply = Vec::with_capacity(datagram.len() + name.len() + 1);
    loop {
        // A failed receive or send (an ICMP error from an earlier reply) is
        // no reason to stop serving.
        let Ok((len, from)) = socket.recv_from(&mut datagram) else { continue };
        reply.clear();
        reply.extend_from_slice(name.as_bytes());
        reply.push(b' ');
        reply.extend_from_slice(&datagram[..len]);
        let _ = socket.send_to(&reply, from);
    }
}
