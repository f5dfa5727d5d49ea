//! gRPC length-prefixed message framing.
//!
//! Every gRPC message on an HTTP/2 stream is preceded by a 5-byte header: one
//! byte of flags (bit 0 = compressed) followed by the message length as a
//! big-endian `u32`. DATA frame boundaries have nothing to do with message
//! boundaries, so the receiving side must reassemble: [`Decoder`] accepts
//! chunks split anywhere (even inside the header) and yields whole message
//! bodies.
//!
//! This client never negotiates compression (it sends no
//! `grpc-accept-encoding`), so a message with the compressed flag set is a
//! protocol violation and is rejected with [`FrameError::Compressed`].
//!
//! ```
//! use bytes::Bytes;
//! use etcdv3_core::wire::codec::{self, Decoder};
//! use etcdv3_proto::etcdserverpb::RangeRequest;
//!
//! let req = RangeRequest { key: b"foo".to_vec(), ..Default::default() };
//! let frame = codec::encode(&req, codec::DEFAULT_MAX_ENCODE_SIZE).unwrap();
//!
//! // Feed the frame in two pieces, split inside the 5-byte header.
//! let mut decoder = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
//! decoder.push(frame.slice(..3));
//! assert!(decoder.next_message().unwrap().is_none());
//! decoder.push(frame.slice(3..));
//! let body = decoder.next_message().unwrap().unwrap();
//! let decoded: RangeRequest = codec::decode_message(body).unwrap();
//! assert_eq!(decoded, req);
//! assert!(decoder.finish().is_ok());
//! ```

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the gRPC message header: 1 flag byte + 4 length bytes.
pub const HEADER_LEN: usize = 5;

/// Default limit on the size of a received message body (64 MiB).
pub const DEFAULT_MAX_DECODE_SIZE: usize = 64 * 1024 * 1024;

/// Default limit on the size of a sent message body (2 MiB, like etcd's Go
/// client; the server accepts 1.5 MiB of request plus overhead by default).
pub const DEFAULT_MAX_ENCODE_SIZE: usize = 2 * 1024 * 1024;

/// An error while framing or unframing a gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer sent a message with the compressed flag set, but this client
    /// never negotiates compression.
    #[error(
        "received a compressed gRPC message, but compression was not negotiated \
         (no grpc-accept-encoding was sent)"
    )]
    Compressed,
    /// The flag byte of a message header was neither 0 nor 1.
    #[error("invalid gRPC message flag byte {0:#04x} (expected 0 or 1)")]
    InvalidFlag(u8),
    /// A message is larger than the configured limit.
    #[error("gRPC message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the message body in bytes.
        size: usize,
        /// The configured limit in bytes.
        max: usize,
    },
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a gRPC message ({buffered} bytes of a partial message buffered)")]
    Truncated {
        /// Bytes of the partial message (header included) that were buffered.
        buffered: usize,
    },
    /// The message body is not a valid protobuf encoding of the expected type.
    #[error("failed to decode protobuf message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The message could not be encoded.
    #[error("failed to encode protobuf message: {0}")]
    Encode(#[from] prost::EncodeError),
}

/// Encodes `msg` as one length-prefixed gRPC frame (flag 0, no compression).
///
/// Makes exactly one allocation of `HEADER_LEN + msg.encoded_len()` bytes.
/// Fails with [`FrameError::TooLarge`] when the encoded message is larger
/// than `max_size` (or than `u32::MAX`, the largest length the header can
/// carry).
pub fn encode<M: prost::Message>(msg: &M, max_size: usize) -> Result<Bytes, FrameError> {
    let len = checked_len(msg, max_size)?;
    let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
    write_frame(msg, len, &mut buf)?;
    Ok(buf.freeze())
}

/// Appends `msg` as one length-prefixed gRPC frame to `buf`.
///
/// Reserves the needed space once. On error nothing is appended.
pub fn encode_into<M: prost::Message>(
    msg: &M,
    buf: &mut BytesMut,
    max_size: usize,
) -> Result<(), FrameError> {
    let len = checked_len(msg, max_size)?;
    buf.reserve(HEADER_LEN + len);
    let start = buf.len();
    if let Err(e) = write_frame(msg, len, buf) {
        buf.truncate(start);
        return Err(e);
    }
    Ok(())
}

fn checked_len<M: prost::Message>(msg: &M, max_size: usize) -> Result<usize, FrameError> {
    let len = msg.encoded_len();
    let max = max_size.min(u32::MAX as usize);
    if len > max {
        return Err(FrameError::TooLarge { size: len, max });
    }
    Ok(len)
}

fn write_frame<M: prost::Message>(
    msg: &M,
    len: usize,
    buf: &mut BytesMut,
) -> Result<(), FrameError> {
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge {
        size: len,
        max: u32::MAX as usize,
    })?;
    buf.put_u8(0);
    buf.put_u32(len32);
    msg.encode(buf)?;
    Ok(())
}

/// Decodes a message body (as returned by [`Decoder::next_message`]).
pub fn decode_message<M: prost::Message + Default>(body: Bytes) -> Result<M, FrameError> {
    Ok(M::decode(body)?)
}

/// Incremental decoder of a stream of length-prefixed gRPC messages.
///
/// Push chunks as they arrive with [`push`](Decoder::push), then call
/// [`next_message`](Decoder::next_message) until it returns `Ok(None)`.
/// When the stream ends, [`finish`](Decoder::finish) reports whether a
/// partial message was left over.
///
/// A message that lies entirely inside one pushed chunk is returned without
/// copying (a slice of that chunk); only messages spanning chunks are copied
/// into a fresh buffer. A message's declared length is checked against the
/// limit before its body is buffered, so an oversized message is rejected as
/// soon as its header is seen.
///
/// After an error the decoder stays failed: every later `next_message` and
/// `finish` returns the same error and pushed data is discarded.
#[derive(Debug)]
pub struct Decoder {
    max_message_size: usize,
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// Body length of the message whose header has been consumed.
    pending_body: Option<usize>,
    failed: Option<FrameError>,
}

impl Decoder {
    /// Creates a decoder that rejects message bodies larger than
    /// `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Decoder {
            max_message_size,
            chunks: VecDeque::new(),
            buffered: 0,
            pending_body: None,
            failed: None,
        }
    }

    /// The configured maximum message body size.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Appends a chunk of the stream. Empty chunks are ignored, and so is
    /// everything pushed after the decoder has failed.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() || self.failed.is_some() {
            return;
        }
        self.buffered += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Returns the next complete message body, `Ok(None)` when more input is
    /// needed, or the error that made the stream invalid.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let body_len = match self.pending_body {
            Some(len) => len,
            None => {
                if self.buffered < HEADER_LEN {
                    return Ok(None);
                }
                let mut header = [0u8; HEADER_LEN];
                self.copy_out(&mut header);
                let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                let err = match header[0] {
                    0 if len > self.max_message_size => Some(FrameError::TooLarge {
                        size: len,
                        max: self.max_message_size,
                    }),
                    0 => None,
                    1 => Some(FrameError::Compressed),
                    flag => Some(FrameError::InvalidFlag(flag)),
                };
                if let Some(err) = err {
                    return Err(self.fail(err));
                }
                self.pending_body = Some(len);
                len
            }
        };
        if self.buffered < body_len {
            return Ok(None);
        }
        self.pending_body = None;
        Ok(Some(self.take(body_len)))
    }

    /// Number of bytes buffered and not yet returned (including a consumed
    /// header of a message whose body is still incomplete).
    pub fn buffered_len(&self) -> usize {
        match self.pending_body {
            Some(_) => self.buffered + HEADER_LEN,
            None => self.buffered,
        }
    }

    /// Whether the decoder has failed and will only return errors.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Checks that the stream ended on a message boundary.
    ///
    /// Returns [`FrameError::Truncated`] when a partial message is buffered,
    /// and the original error when the decoder has failed. Complete messages
    /// still waiting to be taken with `next_message` also count as buffered,
    /// so drain the decoder first.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.buffered_len() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.chunks.clear();
        self.buffered = 0;
        self.pending_body = None;
        self.failed = Some(err.clone());
        err
    }

    /// Consumes exactly `out.len()` bytes (the caller checked they are there).
    fn copy_out(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&front[..n]);
            front.advance(n);
            filled += n;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        self.buffered -= filled;
    }

    /// Takes `len` bytes (the caller checked they are there): zero-copy when
    /// they lie in the first chunk.
    fn take(&mut self, len: usize) -> Bytes {
        if len == 0 {
            return Bytes::new();
        }
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= len {
                let body = front.split_to(len);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.buffered -= len;
                return body;
            }
        }
        let mut body = BytesMut::with_capacity(len);
        while body.len() < len {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(len - body.len());
            body.extend_from_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        self.buffered -= body.len();
        body.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn whole_message_in_one_chunk_is_zero_copy() {
        let data = Bytes::from(frame(0, b"hello"));
        let mut d = Decoder::new(100);
        d.push(data.clone());
        let body = d.next_message().unwrap().unwrap();
        assert_eq!(&body[..], b"hello");
        // The body points into the pushed chunk.
        assert_eq!(body.as_ptr(), data[HEADER_LEN..].as_ptr());
        assert_eq!(d.buffered_len(), 0);
    }

    #[test]
    fn spanning_message_is_copied() {
        let data = frame(0, b"hello world");
        let mut d = Decoder::new(100);
        d.push(Bytes::copy_from_slice(&data[..8]));
        assert_eq!(d.next_message().unwrap(), None);
        assert_eq!(d.buffered_len(), 8);
        d.push(Bytes::copy_from_slice(&data[8..]));
        assert_eq!(&d.next_message().unwrap().unwrap()[..], b"hello world");
        assert_eq!(d.next_message().unwrap(), None);
        d.finish().unwrap();
    }

    #[test]
    fn failed_decoder_discards_pushes() {
        let mut d = Decoder::new(100);
        d.push(Bytes::from(frame(7, b"x")));
        assert_eq!(d.next_message(), Err(FrameError::InvalidFlag(7)));
        d.push(Bytes::from(frame(0, b"x")));
        assert_eq!(d.buffered_len(), 0);
        assert!(d.is_failed());
        assert_eq!(d.next_message(), Err(FrameError::InvalidFlag(7)));
        assert_eq!(d.finish(), Err(FrameError::InvalidFlag(7)));
    }
}
