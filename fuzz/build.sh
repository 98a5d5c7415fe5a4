# Sourced by smoke.sh and long.sh (not run on its own): builds every fuzz target with
# $sanitizer into $target_dir and writes the seed corpora to seeds/. Sets $bin, the directory
# of the built targets.
#
# With a sanitizer, its runtime defines the coverage callbacks that the instrumented `seeds`
# binary (not linked with libFuzzer) calls, so one `cargo fuzz build` builds the targets and
# the seed writer at once. With `none` nothing defines them and `seeds` does not link: the
# targets are then built by name and the seeds written by an ordinary (debug) build, the one
# `cargo test` here uses (without RUSTC_BOOTSTRAP, which cargo counts as a change of compiler:
# with it the debug build would be made twice).
export RUSTC_BOOTSTRAP=1
bin="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

build_started=$SECONDS
rm -rf seeds
if [ "$sanitizer" = none ]; then
    for t in dns_query whois_line rdap_path state_file link_message; do
        cargo fuzz build --sanitizer none --target-dir "$target_dir" "$t"
    done
    env -u RUSTC_BOOTSTRAP cargo run --quiet --target-dir "$target_dir" --bin seeds -- seeds
else
    cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir"
    "$bin/seeds" seeds
fi
echo "fuzz: built in $((SECONDS - build_started)) s (sanitizer $sanitizer)"
