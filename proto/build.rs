//! Compiles the link's `.proto` files (pure Rust with protox: no `protoc` needed) and
//! generates the prost messages and tonic client and server into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["orrery/v1/link.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
