#!/bin/sh
# Validate the deployment files in deploy/ against an installed MarketPulse:
#   deploy/verify.sh [PREFIX]      PREFIX: where MarketPulse is installed (default: this checkout)
# 1. check_units.py: sections, commands that exist under PREFIX (the venv's python, the modules it
#    runs, app.py), a non-root user, the environment file example (known settings, no secrets,
#    loopback addresses);
# 2. `systemd-analyze verify` on the units with /opt/marketpulse read as PREFIX (when installed):
#    any line it prints fails the check;
# 3. `nginx -t` on deploy/nginx/marketpulse.conf inside a minimal nginx.conf (when nginx is on
#    PATH or NGINX_BIN names it).
# Exit 0 when every check that could run passed; each skipped check says so.
# MARKETPULSE_DEPLOY_DIR checks the files of another folder (tests break a copy on purpose).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(cd "${1:-$here/..}" && pwd)
files=${MARKETPULSE_DEPLOY_DIR:-$here}
python=$prefix/.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

if [ -x "$python" ]; then
    "$python" "$here/check_units.py" --prefix "$prefix" "$files" || status=1
else
    echo "$python is missing: install MarketPulse under $prefix first (make .venv/.run-deps)"
    status=1
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    count=0
    for unit in "$files"/*.service; do
        sed "s#/opt/marketpulse#$prefix#g" "$unit" > "$tmp/$(basename "$unit")"
        count=$((count + 1))
    done
    if out=$(cd "$tmp" && systemd-analyze verify ./*.service 2>&1) && [ -z "$out" ]; then
        echo "systemd-analyze verify: $count units OK"
    else
        echo "systemd-analyze verify found problems:"
        echo "$out" | sed "s#$tmp/##g"
        status=1
    fi
else
    echo "systemd-analyze not found: the units were checked by check_units.py only"
fi

nginx=${NGINX_BIN:-$(command -v nginx || true)}
if [ -n "$nginx" ]; then
    mkdir "$tmp/nginx"
    cat > "$tmp/nginx/nginx.conf" <<CONF
pid $tmp/nginx/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $files/nginx/marketpulse.conf;
}
CONF
    if out=$(env -u NGINX "$nginx" -t -q -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" 2>&1) && [ -z "$out" ]; then
        echo "nginx -t: nginx/marketpulse.conf OK"
    else
        echo "nginx -t found problems:"
        echo "$out" | sed "s#$tmp/nginx/##g"
        status=1
    fi
else
    echo "nginx not found: nginx/marketpulse.conf was not checked by nginx -t (set NGINX_BIN=/path/to/nginx)"
fi
exit $status
