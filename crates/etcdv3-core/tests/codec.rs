//! Tests of the gRPC framing codec.

use bytes::{Bytes, BytesMut};
use etcdv3_core::wire::codec::{
    decode_message, encode, encode_into, Decoder, FrameError, DEFAULT_MAX_DECODE_SIZE, HEADER_LEN,
};
use proptest::prelude::*;

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
    #[prost(uint64, tag = "2")]
    n: u64,
}

fn raw_frame(flag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![flag];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn drain(decoder: &mut Decoder) -> Result<Vec<Bytes>, FrameError> {
    let mut out = Vec::new();
    while let Some(m) = decoder.next_message()? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn encode_writes_header_and_body() {
    let msg = Msg {
        data: b"abc".to_vec(),
        n: 7,
    };
    let frame = encode(&msg, 1024).unwrap();
    let body = prost::Message::encode_to_vec(&msg);
    assert_eq!(frame[0], 0);
    assert_eq!(&frame[1..5], &(body.len() as u32).to_be_bytes());
    assert_eq!(&frame[HEADER_LEN..], &body[..]);
    assert_eq!(frame.len(), HEADER_LEN + body.len());
}

#[test]
fn encode_rejects_too_large() {
    let msg = Msg {
        data: vec![1; 100],
        n: 0,
    };
    let len = prost::Message::encoded_len(&msg);
    assert_eq!(
        encode(&msg, len - 1),
        Err(FrameError::TooLarge {
            size: len,
            max: len - 1
        })
    );
    assert!(encode(&msg, len).is_ok());
    let mut buf = BytesMut::from(&b"xy"[..]);
    assert!(encode_into(&msg, &mut buf, len - 1).is_err());
    assert_eq!(&buf[..], b"xy", "nothing appended on error");
}

#[test]
fn encode_into_appends_frames() {
    let a = Msg {
        data: b"a".to_vec(),
        n: 1,
    };
    let b = Msg::default();
    let mut buf = BytesMut::new();
    encode_into(&a, &mut buf, 1024).unwrap();
    encode_into(&b, &mut buf, 1024).unwrap();
    let mut d = Decoder::new(1024);
    d.push(buf.freeze());
    let msgs = drain(&mut d).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(decode_message::<Msg>(msgs[0].clone()).unwrap(), a);
    assert_eq!(decode_message::<Msg>(msgs[1].clone()).unwrap(), b);
    assert!(msgs[1].is_empty(), "an empty message has an empty body");
    d.finish().unwrap();
}

#[test]
fn header_split_byte_by_byte() {
    let data = raw_frame(0, b"payload");
    let mut d = Decoder::new(100);
    for (i, b) in data.iter().enumerate() {
        d.push(Bytes::copy_from_slice(&[*b]));
        let got = d.next_message().unwrap();
        if i + 1 < data.len() {
            assert_eq!(got, None, "message returned early at byte {i}");
            assert_eq!(d.buffered_len(), i + 1);
            assert_eq!(d.finish(), Err(FrameError::Truncated { buffered: i + 1 }));
        } else {
            assert_eq!(got.as_deref(), Some(&b"payload"[..]));
        }
    }
    d.finish().unwrap();
}

#[test]
fn compressed_flag_rejected_with_clear_message() {
    let mut d = Decoder::new(100);
    d.push(Bytes::from(raw_frame(1, b"zz")));
    let err = d.next_message().unwrap_err();
    assert_eq!(err, FrameError::Compressed);
    assert!(err.to_string().contains("compression was not negotiated"));
    // Sticky.
    assert_eq!(d.next_message(), Err(FrameError::Compressed));
}

#[test]
fn invalid_flag_rejected() {
    let mut d = Decoder::new(100);
    d.push(Bytes::from(raw_frame(0x80, b"")));
    assert_eq!(d.next_message(), Err(FrameError::InvalidFlag(0x80)));
}

#[test]
fn too_large_rejected_before_body_is_buffered() {
    let mut d = Decoder::new(10);
    // Only the header of an 11-byte message: rejected at once.
    d.push(Bytes::from(vec![0, 0, 0, 0, 11]));
    assert_eq!(
        d.next_message(),
        Err(FrameError::TooLarge { size: 11, max: 10 })
    );
    // A huge declared length does not make the decoder wait for 4 GiB.
    let mut d = Decoder::new(DEFAULT_MAX_DECODE_SIZE);
    d.push(Bytes::from(vec![0, 0xff, 0xff, 0xff, 0xff]));
    assert_eq!(
        d.next_message(),
        Err(FrameError::TooLarge {
            size: u32::MAX as usize,
            max: DEFAULT_MAX_DECODE_SIZE
        })
    );
    // Exactly at the limit is fine.
    let mut d = Decoder::new(10);
    d.push(Bytes::from(raw_frame(0, &[7; 10])));
    assert_eq!(d.next_message().unwrap().unwrap().len(), 10);
}

#[test]
fn messages_before_an_error_are_delivered() {
    let mut stream = raw_frame(0, b"good");
    stream.extend(raw_frame(2, b"bad"));
    let mut d = Decoder::new(100);
    d.push(Bytes::from(stream));
    assert_eq!(d.next_message().unwrap().as_deref(), Some(&b"good"[..]));
    assert_eq!(d.next_message(), Err(FrameError::InvalidFlag(2)));
}

#[test]
fn decode_message_reports_bad_protobuf() {
    // Field 1, wire type 2 (bytes) with a length running past the end.
    let err = decode_message::<Msg>(Bytes::from_static(&[0x0a, 0x05, 1])).unwrap_err();
    assert!(matches!(err, FrameError::Decode(_)), "{err:?}");
}

#[test]
fn zero_copy_for_messages_inside_one_chunk() {
    let mut stream = raw_frame(0, b"first");
    stream.extend(raw_frame(0, b"second"));
    let chunk = Bytes::from(stream);
    let mut d = Decoder::new(100);
    d.push(chunk.clone());
    let a = d.next_message().unwrap().unwrap();
    let b = d.next_message().unwrap().unwrap();
    assert_eq!(a.as_ptr(), chunk[HEADER_LEN..].as_ptr());
    assert_eq!(b.as_ptr(), chunk[2 * HEADER_LEN + 5..].as_ptr());
}

fn split_points(len: usize, cuts: &[usize]) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.dedup();
    points
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn output_independent_of_chunking(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let msgs: Vec<Msg> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| Msg { data: b.clone(), n: i as u64 })
            .collect();
        let mut stream = BytesMut::new();
        for m in &msgs {
            encode_into(m, &mut stream, 1 << 20).unwrap();
        }
        let stream = stream.freeze();
        let points = split_points(stream.len(), &cuts);
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for w in points.windows(2) {
            d.push(stream.slice(w[0]..w[1]));
            out.extend(drain(&mut d).unwrap());
        }
        d.finish().unwrap();
        let decoded: Vec<Msg> = out.into_iter().map(|b| decode_message(b).unwrap()).collect();
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn truncated_stream_detected(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 1..6),
        cut in any::<usize>(),
    ) {
        let mut stream = Vec::new();
        for b in &bodies {
            stream.extend(raw_frame(0, b));
        }
        // A cut strictly inside the stream: 1..=len-1.
        let cut = 1 + cut % (stream.len() - 1);
        let mut d = Decoder::new(1 << 20);
        d.push(Bytes::copy_from_slice(&stream[..cut]));
        drain(&mut d).unwrap();
        // Find whether the cut fell on a message boundary.
        let mut boundary = 0;
        let mut on_boundary = false;
        for b in &bodies {
            boundary += HEADER_LEN + b.len();
            if boundary == cut { on_boundary = true; }
        }
        if on_boundary {
            prop_assert!(d.finish().is_ok());
        } else {
            let is_truncated = matches!(d.finish(), Err(FrameError::Truncated { buffered }) if buffered > 0);
            prop_assert!(is_truncated);
        }
    }

    #[test]
    fn max_size_enforced(len in 0usize..200, max in 0usize..200) {
        let mut d = Decoder::new(max);
        d.push(Bytes::from(raw_frame(0, &vec![0u8; len])));
        let got = d.next_message();
        if len > max {
            prop_assert_eq!(got, Err(FrameError::TooLarge { size: len, max }));
        } else {
            prop_assert_eq!(got.unwrap().map(|b| b.len()), Some(len));
        }
    }

    #[test]
    fn bad_flags_rejected(flag in 1u8..=255, body in prop::collection::vec(any::<u8>(), 0..10)) {
        let mut d = Decoder::new(100);
        d.push(Bytes::from(raw_frame(flag, &body)));
        let expected = if flag == 1 { FrameError::Compressed } else { FrameError::InvalidFlag(flag) };
        prop_assert_eq!(d.next_message(), Err(expected.clone()));
        prop_assert_eq!(d.finish(), Err(expected));
    }
}
