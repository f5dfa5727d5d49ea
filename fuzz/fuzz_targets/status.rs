//! Fuzzes gRPC status parsing (grpc-status / grpc-message in headers and
//! trailers, HTTP status, RST_STREAM codes), percent-coding, grpc-timeout,
//! endpoint parsing and etcd error classification.
//! The body lives in `etcdv3_core::fuzzing` so `cargo test` runs it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    etcdv3_core::fuzzing::fuzz_status(data);
});
