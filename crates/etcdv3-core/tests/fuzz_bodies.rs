//! Runs the fuzz target bodies (`etcdv3_core::fuzzing`, shared with `fuzz/`)
//! over a few thousand generated inputs, so that `cargo test` exercises them
//! without cargo-fuzz. The module is behind the `fuzzing` feature, which the
//! crate's dev-dependency on itself turns on for its tests.

use etcdv3_core::fuzzing::{fuzz_decoder, fuzz_status};
use etcdv3_core::util::rng::Rng;

fn random_bytes(rng: &mut Rng, max_len: u64) -> Vec<u8> {
    let len = rng.gen_range(0..max_len + 1) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// A stream of mostly well-formed frames, sometimes corrupted, chopped into
/// the `[len][bytes]` chunk encoding `fuzz_decoder` reads.
fn structured_decoder_input(rng: &mut Rng) -> Vec<u8> {
    let mut stream = Vec::new();
    for _ in 0..rng.gen_range(0..6) {
        let max_len = if rng.gen_bool(0.2) { 400 } else { 20 };
        let body = random_bytes(rng, max_len);
        let flag = if rng.gen_bool(0.05) {
            rng.next_u64() as u8
        } else {
            0
        };
        stream.push(flag);
        stream.extend_from_slice(&(body.len() as u32).to_be_bytes());
        stream.extend_from_slice(&body);
    }
    if rng.gen_bool(0.3) && !stream.is_empty() {
        let cut = rng.gen_range(0..stream.len() as u64) as usize;
        stream.truncate(cut);
    }
    let mut data = vec![rng.next_u64() as u8];
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = (rng.gen_range(0..64) as usize).min(rest.len());
        data.push(n as u8);
        data.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if n == 0 && rng.gen_bool(0.5) {
            // Keep some empty chunks, but make progress.
            let n = rest.len().min(1);
            data.push(n as u8);
            data.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
    }
    data
}

#[test]
fn decoder_body_over_generated_inputs() {
    let mut rng = Rng::new(0x5eed_0001);
    for _ in 0..2_000 {
        fuzz_decoder(&structured_decoder_input(&mut rng));
    }
    for _ in 0..2_000 {
        fuzz_decoder(&random_bytes(&mut rng, 600));
    }
    fuzz_decoder(&[]);
}

fn field(rng: &mut Rng) -> Vec<u8> {
    let choices: [&[u8]; 8] = [
        b"14",
        b"0",
        b"abc",
        b"99",
        b"etcdserver: no leader",
        b"a%20b%zz",
        b"500000u",
        b"[::1]:2379",
    ];
    let mut v = if rng.gen_bool(0.6) {
        choices[rng.gen_range(0..choices.len() as u64) as usize].to_vec()
    } else {
        random_bytes(rng, 30)
    };
    v.truncate(63);
    v
}

/// Input in the layout `fuzz_status` reads: selector, 2-byte HTTP status,
/// 4-byte reason, four `[len][bytes]` fields, then free text.
fn structured_status_input(rng: &mut Rng) -> Vec<u8> {
    let mut data = vec![rng.next_u64() as u8];
    data.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes());
    let reason = if rng.gen_bool(0.5) {
        rng.gen_range(0..16) as u32
    } else {
        rng.next_u64() as u32
    };
    data.extend_from_slice(&reason.to_le_bytes());
    for _ in 0..4 {
        let f = field(rng);
        data.push(f.len() as u8);
        data.extend_from_slice(&f);
    }
    data.extend(random_bytes(rng, 80));
    data
}

#[test]
fn status_body_over_generated_inputs() {
    let mut rng = Rng::new(0x5eed_0002);
    for _ in 0..3_000 {
        fuzz_status(&structured_status_input(&mut rng));
    }
    for _ in 0..2_000 {
        fuzz_status(&random_bytes(&mut rng, 300));
    }
    fuzz_status(&[]);
}

/// The state machine under a few thousand random event sequences.
#[test]
fn machine_body_holds_its_invariants_on_random_event_sequences() {
    let mut rng = Rng::new(0x6d61_6368);
    let start = std::time::Instant::now();
    for _ in 0..3000 {
        let input = random_bytes(&mut rng, 600);
        etcdv3_core::fuzzing::fuzz_machine(start, &input);
    }
}
