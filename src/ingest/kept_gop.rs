//! The packets a source keeps while its decoder is stopped: the current GOP, from its keyframe
//! up to the newest packet, as FFmpeg read them, so that a warm-up can decode the newest
//! picture. Bounded in bytes and packets; it decodes nothing itself.

use ffmpeg_next as ffmpeg;

use crate::media::gop::DEFAULT_MAX_BYTES;

/// At most this many packets (a 40 s GOP at 25 fps): a warm-up decodes at most these.
const MAX_PACKETS: usize = 1000;

/// The current GOP's packets, or none when it outgrew its bounds (then nothing is kept until
/// the next keyframe: a GOP without its keyframe decodes to smears).
#[derive(Default)]
pub struct KeptGop {
    packets: Vec<ffmpeg::Packet>,
    bytes: usize,
    /// Packets since the keyframe in `packets[0]` are all kept.
    whole: bool,
}

impl KeptGop {
    /// Keeps `packet`: a keyframe starts a new GOP; a packet of a GOP that overflowed is
    /// dropped.
    pub fn keep(&mut self, packet: ffmpeg::Packet) {
        if packet.is_key() {
            self.clear();
            self.whole = true;
        }
        if !self.whole {
            return;
        }
        let size = packet.size();
        if self.packets.len() >= MAX_PACKETS || self.bytes + size > DEFAULT_MAX_BYTES {
            self.clear();
            return;
        }
        self.bytes += size;
        self.packets.push(packet);
    }

    /// The kept packets, keyframe first.
    pub fn packets(&self) -> &[ffmpeg::Packet] {
        &self.packets
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
        self.whole = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(len: usize, key: bool) -> ffmpeg::Packet {
        let mut p = ffmpeg::Packet::copy(&vec![0u8; len]);
        if key {
            p.set_flags(ffmpeg::codec::packet::Flags::KEY);
        }
        p
    }

    #[test]
    fn keeps_from_the_keyframe_and_drops_a_gop_that_outgrows_its_bound() {
        let mut g = KeptGop::default();
        g.keep(packet(10, false));
        assert!(g.is_empty(), "nothing before a keyframe");
        g.keep(packet(10, true));
        g.keep(packet(10, false));
        g.keep(packet(10, true));
        g.keep(packet(10, false));
        let kept = g.packets();
        assert_eq!(kept.len(), 2, "only the current GOP");
        assert!(kept[0].is_key());
        g.keep(packet(DEFAULT_MAX_BYTES / 2, true));
        g.keep(packet(DEFAULT_MAX_BYTES / 2 + 1, false));
        assert!(g.is_empty(), "over the byte bound: dropped");
        g.keep(packet(10, false));
        assert!(g.is_empty(), "and nothing kept until the next keyframe");
    }
}
