//! Just enough of the DNS wire format (RFC 1035) for a container resolver: read the one
//! question of a query, write an answer of A/AAAA records or an error code. Everything
//! else is relayed to the upstream servers byte for byte.

use std::net::IpAddr;

/// `A`.
pub const TYPE_A: u16 = 1;
/// `AAAA`.
pub const TYPE_AAAA: u16 = 28;

/// NOERROR.
pub const RCODE_OK: u8 = 0;
/// SERVFAIL.
pub const RCODE_SERVFAIL: u8 = 2;
/// NXDOMAIN.
pub const RCODE_NXDOMAIN: u8 = 3;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The name asked for, lower case, without the final dot.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// Where the question ends (the answer copies it).
    pub question_end: usize,
}

/// Parses the header and the first question of `msg`; `None` for anything that is not a
/// plain standard query.
pub fn parse_query(msg: &[u8]) -> Option<Query> {
    if msg.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qr || opcode != 0 || qdcount != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 || len > 63 {
            return None;
        }
        let label = msg.get(i + 1..i + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += 1 + len;
        if i > 255 + 12 {
            return None;
        }
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    let _qclass = u16::from_be_bytes([*msg.get(i + 2)?, *msg.get(i + 3)?]);
    Some(Query {
        name: labels.join("."),
        qtype,
        question_end: i + 4,
    })
}

/// An answer to `query` (its header and question copied) with `addrs` of the asked type,
/// TTL 0 (containers come and go; aardvark-dns does the same), and `rcode`.
pub fn answer(msg: &[u8], q: &Query, addrs: &[IpAddr], rcode: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.question_end + addrs.len() * 28);
    out.extend_from_slice(&msg[..2]);
    let rd = msg[2] & 0x01;
    out.push(0x80 | 0x04 | rd); // QR, AA, RD as asked
    out.push(0x80 | (rcode & 0x0f)); // RA
    out.extend_from_slice(&1u16.to_be_bytes());
    let n = u16::try_from(addrs.len()).unwrap_or(0);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&msg[12..q.question_end]);
    for a in addrs {
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (t, data): (u16, Vec<u8>) = match a {
            IpAddr::V4(v) => (TYPE_A, v.octets().to_vec()),
            IpAddr::V6(v) => (TYPE_AAAA, v.octets().to_vec()),
        };
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// A bare error answer (for a query we could not even parse, only the header is kept).
pub fn error(msg: &[u8], rcode: u8) -> Vec<u8> {
    match parse_query(msg) {
        Some(q) => answer(msg, &q, &[], rcode),
        None if msg.len() >= 12 => {
            let mut out = msg[..12].to_vec();
            out[2] |= 0x80;
            out[3] = 0x80 | (rcode & 0x0f);
            for b in &mut out[4..12] {
                *b = 0;
            }
            out
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `web.` type A, as `nslookup` sends it.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(u8::try_from(l.len()).unwrap());
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn parses_and_answers() {
        let m = query("Web.Example", TYPE_A);
        let q = parse_query(&m).unwrap();
        assert_eq!((q.name.as_str(), q.qtype), ("web.example", TYPE_A));
        let a = answer(&m, &q, &["10.78.0.2".parse().unwrap()], RCODE_OK);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1);
        assert_eq!(&a[a.len() - 4..], &[10, 78, 0, 2]);
        let nx = answer(&m, &q, &[], RCODE_NXDOMAIN);
        assert_eq!(nx[3] & 0x0f, RCODE_NXDOMAIN);
        assert!(parse_query(&m[..5]).is_none());
        let mut resp = m.clone();
        resp[2] |= 0x80;
        assert!(parse_query(&resp).is_none(), "answers are not queries");
    }
}
