#!/usr/bin/env bash
# Figures of the Debian package, each against a baseline measured in the same run. Prints:
#   - the package file and its installed size (dpkg's Installed-Size), against the stripped
#     binary alone;
#   - the stripped release binary without the demo feature (the package's) and with it (the
#     source build's default), and their ratio;
#   - start-up time to the first Waldur request: exec of the package's binary
#     (`run -m report --once`, the bundled plugins) to the simulator's first logged request,
#     median of RUNS runs, against the median exec time of `waldur-agent --version`.
# Builds the package with scripts/package.sh first, then the release binary with `demo` (so
# target/release/waldur-agent is the demo build afterwards; package.sh rebuilds it). Prints
# figures; not a test.
# Usage: scripts/package-figures.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/demo-site.sh
source scripts/demo-site.sh

RUNS=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d)"
SIM_PID=""
cleanup() {
    if [[ -n "$SIM_PID" ]]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

scripts/package.sh >"$WORK/package.log" 2>&1 || { cat "$WORK/package.log" >&2; exit 1; }
DEB="$(ls -t target/debian/waldur-agent_*.deb | head -n 1)"
RELEASE=target/release
strip -o "$WORK/agent-nodemo" "$RELEASE/waldur-agent"
mkdir -p "$WORK/plugins"
cp target/release/package/plugins/*.so "$WORK/plugins/"
chmod 0755 "$WORK/plugins"

cargo build --release -p waldur-agent -p waldur-sim >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
strip -o "$WORK/agent-demo" "$RELEASE/waldur-agent"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
kib() { echo $(( ($1 + 1023) / 1024 )); }
deb_size=$(stat -c %s "$DEB")
installed_kib=$(dpkg-deb -f "$DEB" Installed-Size)
nodemo=$(stat -c %s "$WORK/agent-nodemo")
demo=$(stat -c %s "$WORK/agent-demo")

# ---------------------------------------------------------------- start-up
start_demo_sim "$RELEASE/waldur-sim"
write_demo_config "$WORK/config.yaml"
now_us() { date +%s%6N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
first=()
version=()
for _ in $(seq "$RUNS"); do
    curl -fsS -X POST "$SIM_ORIGIN/__sim/reset" >/dev/null
    t0=$(now_us)
    RUST_LOG=error "$WORK/agent-nodemo" run -m report --once -c "$WORK/config.yaml" \
        --plugin-dir "$WORK/plugins" >/dev/null 2>&1 || true
    at=$(curl -fsS "$SIM_ORIGIN/__sim/log" | grep -o '"received_unix_us":[0-9]*' | head -n 1 | cut -d: -f2)
    [[ -n "$at" ]] || { echo "the agent sent no request" >&2; exit 1; }
    first+=($(( at - t0 )))
    t0=$(now_us)
    "$WORK/agent-nodemo" --version >/dev/null
    version+=($(( $(now_us) - t0 )))
done
first_ms=$(printf '%s\n' "${first[@]}" | median | awk '{ printf "%.1f", $1 / 1000 }')
version_ms=$(printf '%s\n' "${version[@]}" | median | awk '{ printf "%.1f", $1 / 1000 }')

echo "== figures ($(date -u +%F), $(nproc) cores)"
printf '%-58s %s\n' "package file ($(basename "$DEB"))" "$(kib "$deb_size") KiB"
printf '%-58s %s\n' "installed size (Installed-Size)" "$installed_kib KiB ($(ratio "$installed_kib" "$(kib "$nodemo")") x the stripped binary)"
printf '%-58s %s\n' "release binary, stripped, without demo (the package's)" "$(kib "$nodemo") KiB"
printf '%-58s %s\n' "release binary, stripped, with demo (the source build's)" "$(kib "$demo") KiB ($(ratio "$demo" "$nodemo") x without)"
printf '%-58s %s\n' "start-up to the first Waldur request (median of $RUNS)" "$first_ms ms ($(ratio "$first_ms" "$version_ms") x \`--version\`: $version_ms ms)"
