//! `sqlx::migrate!` embeds the migrations at compile time; on stable Rust the macro cannot
//! tell cargo to watch them, so a new or renamed migration rebuilds the crate from here.

fn main() {
    println!("cargo::rerun-if-changed=migrations");
}
