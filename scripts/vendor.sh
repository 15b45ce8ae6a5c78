#!/usr/bin/env bash
# Re-vendor Bootstrap, Bootstrap Icons, htmx, xterm.js (with its fit addon), uPlot and Swagger UI from their npm packages into app/static/vendor.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent bootstrap@5.3.9 htmx.org@2.0.11 bootstrap-icons@1.13.2 \
    @xterm/xterm@6.0.0 @xterm/addon-fit@0.11.0 uplot@1.6.32 swagger-ui-dist@5.35.0)
n="$work/node_modules"; v=app/static/vendor
mkdir -p "$v/bootstrap" "$v/htmx" "$v/bootstrap-icons/fonts" "$v/xterm" "$v/uplot" "$v/swagger-ui"
cp "$n"/bootstrap/dist/css/bootstrap.min.css{,.map} "$n"/bootstrap/dist/js/bootstrap.bundle.min.js{,.map} "$n/bootstrap/LICENSE" "$v/bootstrap/"
cp "$n/htmx.org/dist/htmx.min.js" "$n/htmx.org/LICENSE" "$v/htmx/"
cp "$n/bootstrap-icons/font/bootstrap-icons.min.css" "$n/bootstrap-icons/LICENSE" "$v/bootstrap-icons/"
cp "$n"/bootstrap-icons/font/fonts/bootstrap-icons.woff{,2} "$v/bootstrap-icons/fonts/"
cp "$n/@xterm/xterm/lib/xterm.js" "$n/@xterm/xterm/css/xterm.css" "$n/@xterm/xterm/LICENSE" "$n/@xterm/addon-fit/lib/addon-fit.js" "$v/xterm/"
cp "$n/uplot/dist/uPlot.iife.min.js" "$n/uplot/dist/uPlot.min.css" "$n/uplot/LICENSE" "$v/uplot/"
cp "$n"/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,LICENSE,NOTICE} "$v/swagger-ui/"
echo "vendored into $v"
