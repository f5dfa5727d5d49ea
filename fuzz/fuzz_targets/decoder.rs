//! Fuzzes the incremental gRPC frame decoder: arbitrary bytes in arbitrary
//! chunks must give the same messages (or error) as the whole stream at once.
//! The body lives in `etcdv3_core::fuzzing` so `cargo test` runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    etcdv3_core::fuzzing::fuzz_decoder(data);
});
