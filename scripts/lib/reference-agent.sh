# Sourced by the scripts that run the reference Python agent (bench-agent.sh, bench-events.sh,
# conformance-python.sh): one place for how PyPI waldur-site-agent 1.0.7 and the `sim-demo`
# backend (scripts/python/) are installed into a virtualenv.
#
# Needs ROOT (the repository). Reads REFERENCE_AGENT_VENV (default
# target/reference-agent/venv, shared by the three scripts). Needs python3 with venv; PyPI
# access the first time.

REFERENCE_AGENT_VERSION="1.0.7"
REFERENCE_VENV="${REFERENCE_AGENT_VENV:-$ROOT/target/reference-agent/venv}"
REFERENCE_AGENT="$REFERENCE_VENV/bin/waldur_site_agent"

# reference_agent_install WORKDIR: the virtualenv with waldur-site-agent 1.0.7 (created or
# reused), then the sim-demo backend installed into it from a copy in WORKDIR, so the build
# leaves nothing in scripts/.
reference_agent_install() {
    local work="$1"
    local installed=""
    # Read to the end (no `grep -q`): under pipefail an early exit would fail pip with SIGPIPE.
    if [[ -x "$REFERENCE_AGENT" ]]; then
        installed="$("$REFERENCE_VENV/bin/pip" show waldur-site-agent 2>/dev/null | sed -n 's/^Version: //p')"
    fi
    if [[ "$installed" != "$REFERENCE_AGENT_VERSION" ]]; then
        echo "== creating virtualenv $REFERENCE_VENV (pip install waldur-site-agent==$REFERENCE_AGENT_VERSION)" >&2
        python3 -m venv "$REFERENCE_VENV"
        "$REFERENCE_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "waldur-site-agent==$REFERENCE_AGENT_VERSION"
    fi
    echo "== installing the sim-demo backend into the virtualenv" >&2
    rm -rf "$work/pyplugin"
    cp -r "$ROOT/scripts/python" "$work/pyplugin"
    "$REFERENCE_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
        "$work/pyplugin"
}
