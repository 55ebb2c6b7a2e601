//! Which session a datagram belongs to before its source address is known: the local ICE
//! ufrag in a STUN binding request's USERNAME (RFC 8445 7.2.2: `local:remote`, the
//! receiver's ufrag first). Only reads; str0m checks the message's integrity.

/// STUN's magic cookie (RFC 5389), bytes 4..8 of every STUN message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER: usize = 20;
const USERNAME: u16 = 0x0006;

/// Whether `data` looks like a STUN message (RFC 7983: first byte 0..3, then the cookie).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER && data[0] < 4 && data[4..8] == MAGIC_COOKIE
}

/// The receiver's ufrag of a STUN message's USERNAME, if it has one.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    if !is_stun(data) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(HEADER..HEADER + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + alen)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split(':').next().filter(|u| !u.is_empty());
        }
        // Attributes are padded to 4 bytes.
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attrs = vec![0x80, 0x2a, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]; // ICE-CONTROLLING
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0, 1];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[9; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn the_receivers_ufrag_comes_first_in_username() {
        assert_eq!(local_ufrag(&binding(b"ours:theirs")), Some("ours"));
        assert_eq!(local_ufrag(&binding(b"odd")), Some("odd"));
        assert_eq!(local_ufrag(&binding(b":x")), None);
    }

    #[test]
    fn other_datagrams_and_truncated_messages_have_none() {
        let m = binding(b"ours:theirs");
        assert_eq!(local_ufrag(&m[..m.len() - 8]), None, "truncated");
        let mut rtp = m.clone();
        rtp[0] = 0x80;
        assert_eq!(local_ufrag(&rtp), None, "RTP");
        assert_eq!(local_ufrag(&[0x16, 0xfe, 0xfd]), None, "DTLS");
        assert_eq!(local_ufrag(&[]), None);
    }
}
