#!/usr/bin/env bash
# Builds dist/sandboxd_<version>_amd64.deb from bin/ and packaging/ with
# dpkg-deb; the Makefile's deb target calls it after building the binaries.
set -euo pipefail
version=${1:?usage: build-deb.sh VERSION}
top=$(cd "$(dirname "$0")/.." && pwd)
stage=$top/dist/stage
rm -rf "$stage"
install -D -m 0755 "$top/bin/sandboxd" "$stage/usr/bin/sandboxd"
install -D -m 0755 "$top/bin/sandboxctl" "$stage/usr/bin/sandboxctl"
install -D -m 0644 "$top/packaging/systemd/sandboxd.service" "$stage/usr/lib/systemd/system/sandboxd.service"
install -D -m 0644 "$top/packaging/systemd/sandboxd.socket" "$stage/usr/lib/systemd/system/sandboxd.socket"
install -D -m 0644 "$top/packaging/sandboxd.sysusers" "$stage/usr/lib/sysusers.d/sandboxd.conf"
install -D -m 0644 "$top/packaging/config.yaml" "$stage/etc/sandboxd/config.yaml"
install -D -m 0644 "$top/README.md" "$stage/usr/share/doc/sandboxd/README.md"
install -D -m 0644 "$top/api/openapi.yaml" "$stage/usr/share/doc/sandboxd/openapi.yaml"
install -D -m 0644 "$top/packaging/prometheus/sandboxd.yml" "$stage/usr/share/doc/sandboxd/examples/prometheus.yml"
install -D -m 0644 "$top/packaging/grafana/sandboxd.json" "$stage/usr/share/doc/sandboxd/examples/grafana-dashboard.json"
install -d "$stage/DEBIAN"
for f in postinst prerm postrm conffiles; do
	install -m "$([ "$f" = conffiles ] && echo 0644 || echo 0755)" "$top/packaging/debian/$f" "$stage/DEBIAN/$f"
done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$top/packaging/debian/control.in" > "$stage/DEBIAN/control"
out=$top/dist/sandboxd_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
rm -rf "$stage"
echo "$out"
