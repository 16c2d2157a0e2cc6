#!/usr/bin/env bash
# Builds the Debian package target/debian/waldur-agent_<version>-1_<arch>.deb with cargo-deb
# (installed with `cargo install --locked cargo-deb` when missing): the agent built in release
# without the `demo` feature (no test simulator inside), the bundled plugins (demo,
# basic-username, slurm, waldur), the links under the reference's command names, one systemd unit per
# mode plus waldur-agent.service, the example config, shell completions and man pages.
# What goes where is [package.metadata.deb] in host/Cargo.toml; this script makes the files it
# lists under target/release/package/. Prints the package's path and sizes.
# Usage: scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need cargo "a Rust toolchain >= 1.89, e.g. from rustup"
need strip "binutils (Debian package binutils)"

if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb (cargo install --locked cargo-deb)"
    cargo install --locked cargo-deb
fi

TARGET="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
RELEASE="$TARGET/release"
ASSETS="$RELEASE/package"

echo "== cargo build --release (agent with the simulator feature but not demo, bundled plugins)"
# One invocation: the plugins declare no features, so --no-default-features only drops `demo`;
# `simulator` (host/Cargo.toml [package.metadata.deb] names it too) keeps `test-order`.
cargo build --release --no-default-features --features waldur-agent/simulator \
    -p waldur-agent -p waldur-plugin-demo -p waldur-plugin-basic-username -p waldur-plugin-slurm \
    -p waldur-plugin-waldur

rm -rf "$ASSETS"
mkdir -p "$ASSETS/plugins" "$ASSETS/systemd"
# Completions, man pages and the reference-name links come from the binary's own command line.
"$RELEASE/waldur-agent" package-assets "$ASSETS"
gzip -9n "$ASSETS"/man/*.1
for plugin in demo basic_username slurm waldur; do
    # Symbols only; the ELF section with the plugin manifest stays.
    strip --strip-unneeded -o "$ASSETS/plugins/libwaldur_plugin_$plugin.so" \
        "$RELEASE/libwaldur_plugin_$plugin.so"
done

# The units: one per mode as the reference's systemd-conf/agent-<mode>/agent.service, plus
# waldur-agent.service for `-m all`, which conflicts with each of them (the same offering and
# mode cannot run twice: the second agent would refuse to start on its instance lock).
UNITS=(
    "order_process|waldur-agent-order-process|processing orders from Waldur"
    "report|waldur-agent-report|reporting usage to Waldur"
    "membership_sync|waldur-agent-membership-sync|syncing membership with Waldur"
    "event_process|waldur-agent-event-process|processing events from Waldur over STOMP"
    "all|waldur-agent|every mode in one process"
)
per_mode=()
for spec in "${UNITS[@]}"; do
    IFS='|' read -r mode unit _ <<<"$spec"
    [[ $mode = all ]] || per_mode+=("$unit.service")
done
for spec in "${UNITS[@]}"; do
    IFS='|' read -r mode unit description <<<"$spec"
    conflicts=""
    [[ $mode != all ]] || conflicts="Conflicts=${per_mode[*]}"
    sed -e "s|@MODE@|$mode|g" -e "s|@UNIT@|$unit.service|g" \
        -e "s|@DESCRIPTION@|$description|g" -e "s|@CONFLICTS@|$conflicts|" \
        host/debian/unit.template >"$ASSETS/systemd/$unit.service"
done

echo "== cargo deb"
# --no-build: the build above made every file; cargo-deb strips the agent binary.
DEB="$(cargo deb -p waldur-agent --no-build | tail -n 1)"
[[ -f "$DEB" ]] || { echo "cargo deb did not report a package file: $DEB" >&2; exit 1; }

kib() { echo "$(( ($1 + 1023) / 1024 )) KiB"; }
echo "== $DEB"
echo "package file:            $(kib "$(stat -c %s "$DEB")")"
echo "installed size:          $(dpkg-deb -f "$DEB" Installed-Size) KiB"
