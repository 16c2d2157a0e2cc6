#!/usr/bin/env bash
# Figures for the plugin boundary (call cost, user_context transfer, plugins list, metrics
# recording, crossings of whole operations).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p waldur-agent --bench plugin_abi
