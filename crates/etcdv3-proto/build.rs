//! Compiles `proto/` (at the workspace root) into prost messages. The
//! descriptor set comes from protox, so no `protoc` binary is needed.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost_types::DescriptorProto;

const FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile(FILES, [&proto_dir])?;

    // A list of every message ("package.Name field_count") for the tests,
    // which check that each one is round-tripped.
    let mut names = String::new();
    for file in &fds.file {
        for msg in &file.message_type {
            list_messages(file.package(), msg, &mut names)?;
        }
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("message_names.txt"), names)?;

    prost_build::Config::new()
        .enable_type_names()
        .compile_fds(fds)?;
    Ok(())
}

fn list_messages(
    prefix: &str,
    msg: &DescriptorProto,
    out: &mut String,
) -> Result<(), std::fmt::Error> {
    let name = format!("{prefix}.{}", msg.name());
    writeln!(out, "{name} {}", msg.field.len())?;
    for nested in &msg.nested_type {
        list_messages(&name, nested, out)?;
    }
    Ok(())
}
