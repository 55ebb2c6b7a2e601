//! The shared UDP socket's batched I/O: a session's datagrams leave in as few system calls as
//! the kernel allows (UDP GSO: one call for a frame's run of equal-sized RTP packets), and
//! datagrams come in split by the segment size when the kernel coalesced them (GRO).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

/// What one `recv` can take: the kernel coalesces at most 64 KiB.
pub(super) const RECV_BUF: usize = 64 * 1024;

/// The largest batch one GSO send carries (the UDP length field's bound, headers aside).
const MAX_GSO_BYTES: usize = 65_000;

/// Where the GSO run that starts at `packets[i]` ends: the packets after it to the same
/// address, each the size of the first but the last (which may be shorter), up to
/// `max_segments` and [`MAX_GSO_BYTES`].
fn run_end(packets: &[(SocketAddr, Vec<u8>)], i: usize, max_segments: usize) -> usize {
    let (to, size) = (packets[i].0, packets[i].1.len());
    let mut end = i + 1;
    let mut bytes = size;
    while end < packets.len()
        && end - i < max_segments
        && packets[end].0 == to
        && packets[end].1.len() <= size
        && bytes + packets[end].1.len() <= MAX_GSO_BYTES
    {
        bytes += packets[end].1.len();
        end += 1;
        if packets[end - 1].1.len() < size {
            break;
        }
    }
    end
}

/// The socket with quinn-udp's state for it (GSO support, found at bind).
pub(super) struct Udp {
    socket: UdpSocket,
    state: UdpSocketState,
}

/// One session's datagrams from one turn of its peer, sent together by [`Udp::send_all`].
#[derive(Default)]
pub(super) struct Outbox {
    packets: Vec<(SocketAddr, Vec<u8>)>,
    joined: Vec<u8>,
}

impl Outbox {
    pub fn push(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.packets.push((to, data));
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

impl Udp {
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        Ok(Self { socket, state })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one datagram.
    pub async fn send_one(&self, to: SocketAddr, data: &[u8]) {
        self.send(&Transmit {
            destination: to,
            ecn: None,
            contents: data,
            segment_size: None,
            src_ip: None,
        })
        .await;
    }

    /// Sends and empties `out`: each run of packets to one address, all the size of the
    /// first but the last (no larger), goes out as one GSO send where the kernel has GSO.
    pub async fn send_all(&self, out: &mut Outbox) {
        let max_segments = self.state.max_gso_segments();
        let mut packets = std::mem::take(&mut out.packets);
        let mut i = 0;
        while i < packets.len() {
            let (to, ref first) = packets[i];
            let size = first.len();
            let end = run_end(&packets, i, max_segments);
            if end - i == 1 {
                self.send_one(to, first).await;
            } else {
                out.joined.clear();
                for (_, p) in &packets[i..end] {
                    out.joined.extend_from_slice(p);
                }
                let batch = Transmit {
                    destination: to,
                    ecn: None,
                    contents: &out.joined,
                    segment_size: Some(size),
                    src_ip: None,
                };
                if !self.send(&batch).await {
                    // The kernel took the GSO option at bind and refused it now (a device
                    // without segmentation offload): the packets one by one.
                    for (_, p) in &packets[i..end] {
                        self.send_one(to, p).await;
                    }
                }
            }
            i = end;
        }
        packets.clear();
        out.packets = packets;
    }

    /// Sends, waiting while the socket's buffer is full. False when the kernel refused it.
    async fn send(&self, t: &Transmit<'_>) -> bool {
        loop {
            if let Err(e) = self.socket.writable().await {
                debug!(error = %e, "WebRTC socket not writable");
                return false;
            }
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send(UdpSockRef::from(&self.socket), t)
            });
            match sent {
                Ok(()) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    debug!(to = %t.destination, error = %e, "WebRTC send failed");
                    return false;
                }
            }
        }
    }

    /// Receives what is waiting into `buf`: calls `each` per datagram with its sender.
    pub async fn recv(&self, buf: &mut [u8], mut each: impl FnMut(SocketAddr, &[u8])) {
        let mut meta = [RecvMeta::default()];
        let got = loop {
            if let Err(e) = self.socket.readable().await {
                break Err(e);
            }
            let mut slices = [IoSliceMut::new(buf)];
            match self.socket.try_io(Interest::READABLE, || {
                self.state
                    .recv(UdpSockRef::from(&self.socket), &mut slices, &mut meta)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        match got {
            Ok(n) if n > 0 => {
                let m = &meta[0];
                let stride = m.stride.max(1);
                for d in buf[..m.len].chunks(stride) {
                    each(m.addr, d);
                }
            }
            Ok(_) => {}
            // ICMP errors from a vanished peer surface here on Linux: not fatal.
            Err(e) => debug!(error = %e, "WebRTC receive error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(sizes: &[(u16, usize)], max_segments: usize) -> Vec<(usize, usize)> {
        let packets: Vec<_> = sizes
            .iter()
            .map(|&(port, n)| (SocketAddr::from(([127, 0, 0, 1], port)), vec![0u8; n]))
            .collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < packets.len() {
            let end = run_end(&packets, i, max_segments);
            out.push((i, end));
            i = end;
        }
        out
    }

    #[test]
    fn a_run_is_one_address_equal_sizes_and_a_shorter_last() {
        let p = [
            (1, 1200),
            (1, 1200),
            (1, 800),
            (1, 1200),
            (2, 1200),
            (2, 100),
            (2, 100),
        ];
        assert_eq!(runs(&p, 64), vec![(0, 3), (3, 4), (4, 6), (6, 7)]);
        // A larger packet starts a new run.
        assert_eq!(runs(&[(1, 500), (1, 1200)], 64), vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn runs_are_bounded_by_segments_and_bytes() {
        assert_eq!(runs(&[(1, 1200); 3], 1), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(runs(&[(1, 1200); 5], 2), vec![(0, 2), (2, 4), (4, 5)]);
        let many = [(1, 1200); 60];
        let r = runs(&many, 64);
        assert_eq!(r[0], (0, MAX_GSO_BYTES / 1200));
    }
}
