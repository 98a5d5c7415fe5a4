//! Compiles the link's `.proto` files (pure Rust with protox: no `protoc` needed) and
//! generates the prost messages and tonic client and server into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["orrery/v1/link.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Shared, reference-counted buffers: a snapshot's encoded objects are sent to every
        // satellite without copying them per request.
        .bytes(".orrery.v1.SnapshotChunk.objects")
        .compile_fds(fds)?;
    Ok(())
}
