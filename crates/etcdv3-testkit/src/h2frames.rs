//! HTTP/2 frames seen by a client proxy: every member's client proxy reads the frames of the
//! plain-HTTP connections it relays and counts the client's PINGs and the server's GOAWAYs (a
//! `too_many_pings` GOAWAY apart), so a benchmark can see etcd's ping policing
//! ([`Cluster::client_http2_counts`](crate::Cluster::client_http2_counts)).
//!
//! etcd (grpc-go, `MinTime` 5 s, `PermitWithoutStream: false`) answers pings closer than 5 s
//! apart on a connection whose server wrote no HEADERS/DATA since the previous ping with a
//! strike, and the third strike with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").

use std::sync::atomic::{AtomicU64, Ordering};

const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_ACK: u8 = 0x1;
/// HTTP/2 error code ENHANCE_YOUR_CALM.
const ENHANCE_YOUR_CALM: u32 = 0xb;
const CLIENT_PREFACE_LEN: usize = 24;
/// A frame longer than this is not HTTP/2 (the largest `SETTINGS_MAX_FRAME_SIZE` is 2^24-1,
/// etcd never asks for more than 16 KiB): the scanner stops rather than buffer it.
const MAX_FRAME: usize = 1 << 20;

/// Whether an error text (or GOAWAY debug data) says the server sent GOAWAY too_many_pings.
pub fn says_too_many_pings(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("too_many_pings") || t.contains("enhance_your_calm")
}

/// An HTTP/2 frame a [`FrameScanner`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// PING (`ack`: a PING ACK).
    Ping { ack: bool },
    /// GOAWAY with its error code and debug data.
    GoAway { code: u32, debug: Vec<u8> },
}

/// Reads the HTTP/2 frames of one direction of a connection from the chunks the proxy
/// forwards, however they are split.
pub(crate) struct FrameScanner {
    /// Bytes of the client connection preface still to skip.
    preface_left: usize,
    buf: Vec<u8>,
    /// Not HTTP/2 (a frame too large): nothing more is read.
    lost: bool,
}

impl FrameScanner {
    /// A scanner for the client-to-server direction (`from_client`, which starts with the
    /// 24-byte preface) or the other one.
    pub(crate) fn new(from_client: bool) -> Self {
        FrameScanner {
            preface_left: if from_client { CLIENT_PREFACE_LEN } else { 0 },
            buf: Vec::new(),
            lost: false,
        }
    }

    /// Feeds `data`; the PING and GOAWAY frames it completes.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Vec<Frame> {
        if self.lost {
            return Vec::new();
        }
        if self.preface_left > 0 {
            let n = self.preface_left.min(data.len());
            self.preface_left -= n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= 9 {
            let h = &self.buf[at..at + 9];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (ty, flags) = (h[3], h[4]);
            if len > MAX_FRAME {
                self.lost = true;
                self.buf = Vec::new();
                return out;
            }
            if self.buf.len() - at < 9 + len {
                break;
            }
            let payload = &self.buf[at + 9..at + 9 + len];
            match ty {
                FRAME_PING => out.push(Frame::Ping {
                    ack: flags & FLAG_ACK != 0,
                }),
                FRAME_GOAWAY if len >= 8 => out.push(Frame::GoAway {
                    code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                    debug: payload[8..].to_vec(),
                }),
                _ => {}
            }
            at += 9 + len;
        }
        self.buf.drain(..at);
        out
    }
}

/// What the client proxies counted, summed over the members
/// ([`Cluster::client_http2_counts`](crate::Cluster::client_http2_counts)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2Counts {
    /// PINGs (not ACKs) the clients sent.
    pub client_pings: u64,
    /// GOAWAYs the members sent, too_many_pings ones included.
    pub goaways: u64,
    /// GOAWAY(ENHANCE_YOUR_CALM) frames, or ones whose debug data says too_many_pings.
    pub too_many_pings: u64,
    /// Client connections relayed to a member.
    pub connections: u64,
}

impl std::ops::Add for Http2Counts {
    type Output = Http2Counts;

    fn add(self, o: Http2Counts) -> Http2Counts {
        Http2Counts {
            client_pings: self.client_pings + o.client_pings,
            goaways: self.goaways + o.goaways,
            too_many_pings: self.too_many_pings + o.too_many_pings,
            connections: self.connections + o.connections,
        }
    }
}

/// One proxy's live counters.
#[derive(Debug, Default)]
pub(crate) struct FrameCounts {
    client_pings: AtomicU64,
    goaways: AtomicU64,
    too_many_pings: AtomicU64,
    connections: AtomicU64,
}

impl FrameCounts {
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, f: &Frame, from_client: bool) {
        match f {
            Frame::Ping { ack: false } if from_client => {
                self.client_pings.fetch_add(1, Ordering::Relaxed);
            }
            Frame::GoAway { code, debug } if !from_client => {
                self.goaways.fetch_add(1, Ordering::Relaxed);
                if *code == ENHANCE_YOUR_CALM
                    || says_too_many_pings(&String::from_utf8_lossy(debug))
                {
                    self.too_many_pings.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn snapshot(&self) -> Http2Counts {
        Http2Counts {
            client_pings: self.client_pings.load(Ordering::Relaxed),
            goaways: self.goaways.load(Ordering::Relaxed),
            too_many_pings: self.too_many_pings.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn ping() -> Vec<u8> {
        frame(FRAME_PING, 0, 0, &[1; 8])
    }

    pub(crate) fn goaway(code: u32, debug: &[u8]) -> Vec<u8> {
        let mut p = 7u32.to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(debug);
        frame(FRAME_GOAWAY, 0, 0, &p)
    }

    pub(crate) const TOO_MANY_PINGS: u32 = ENHANCE_YOUR_CALM;

    #[test]
    fn scanner_finds_pings_after_the_preface_however_split() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
        bytes.extend(ping());
        bytes.extend(frame(0x0, 0, 1, &[FRAME_PING; 40])); // DATA that looks like pings
        bytes.extend(frame(FRAME_PING, FLAG_ACK, 0, &[2; 8]));
        for chunk in [1, 5, 9, 24, 1000] {
            let mut s = FrameScanner::new(true);
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                got.extend(s.feed(c));
            }
            assert_eq!(
                got,
                vec![Frame::Ping { ack: false }, Frame::Ping { ack: true }],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn too_many_pings_goaway_is_counted_apart() {
        let counts = FrameCounts::default();
        let mut s = FrameScanner::new(false);
        let mut bytes = goaway(0, b"");
        bytes.extend(goaway(ENHANCE_YOUR_CALM, b"too_many_pings"));
        bytes.extend(ping()); // a server ping: not the client's
        for f in s.feed(&bytes) {
            counts.count(&f, false);
        }
        let c = counts.snapshot();
        assert_eq!((c.goaways, c.too_many_pings, c.client_pings), (2, 1, 0));
    }

    #[test]
    fn not_http2_stops_the_scanner() {
        let mut s = FrameScanner::new(false);
        assert!(s.feed(&[0xff; 64]).is_empty());
        assert!(s.feed(&ping()).is_empty());
        assert!(s.buf.is_empty());
    }

    #[test]
    fn error_text_of_h2_goaway_says_too_many_pings() {
        // h2's display of a received GOAWAY carries the debug data.
        assert!(says_too_many_pings(
            "connection error received: detected excessive load generating behavior (b\"too_many_pings\")"
        ));
        assert!(says_too_many_pings(
            "GoAway(b\"\", ENHANCE_YOUR_CALM, Remote)"
        ));
        assert!(!says_too_many_pings(
            "status: Unavailable, message: \"etcdserver: no leader\""
        ));
    }
}
