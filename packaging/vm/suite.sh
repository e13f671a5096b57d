#!/bin/bash
# The in-VM integration suite of `make vmtest`: run as root in the guest
# (systemd >= 254, cgroup v2, no network) by sandboxd-vmtest.service, with
# the host share at /host holding the sandboxd .deb. Each check prints
# `ok <name>` or `FAIL <name>: why`; the last line is `N passed, M failed`
# and the exit status is non-zero when a check failed.
#
# Kept short on purpose: under TCG a fork+exec costs ~35 times what it does
# on hardware, and the daemon's first start builds the base venv.
set -u
export LC_ALL=C.UTF-8 SYSTEMD_PAGER='' SYSTEMD_COLORS=0
H=${1:-/host}
SOCK=/run/sandboxd.sock
UNIT=/system.slice/sandboxd.service
CG=/sys/fs/cgroup$UNIT
passed=0 failed=0
t_start=$(date +%s)

ok() { echo "ok $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
note() { echo "  # $*"; }
# check NAME WHY CONDITION...: ok when the condition (a command) succeeds.
check() {
	local name=$1 why=$2
	shift 2
	if "$@"; then ok "$name"; else bad "$name" "$why"; fi
}

# req METHOD PATH [BODY]: sets $code (HTTP status, 000 when no answer) and
# $body. Generous timeout: the first request waits for the base venv build.
req() {
	local out
	out=$(curl -sS --max-time "${REQ_TIMEOUT:-600}" --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' ${3:+--data-binary "$3"} \
		-w '\n%{http_code}' "http://sandboxd$2" 2>&1)
	code=${out##*$'\n'}
	body=${out%$'\n'*}
	[ "$code" != "$out" ] || { code=000; body=$out; }
}
# jget EXPR: a field of $body, by a Python expression over d (JSON, parsed).
jget() {
	python3 -c 'import json,sys
d = json.loads(sys.argv[1])
v = eval(sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))' "$body" "$1" 2>/dev/null
}
# run SID TIMEOUT COMMAND: exec COMMAND (sh -c) in session SID.
run() {
	local b
	b=$(python3 -c 'import json,sys; print(json.dumps({"command": sys.argv[2], "timeout": float(sys.argv[1])}))' "$2" "$3")
	req POST "/v1/sessions/$1/exec" "$b"
}
create() { # create USER SID [LIMITS-JSON]
	req POST /v1/sessions "{\"user_id\":\"$1\",\"session_id\":\"$2\"${3:+,\"limits\":$3}}"
	[ "$code" = 201 ] || { note "create $2: $code $body"; return 1; }
}
unit_prop() { systemctl show -P "$2" "$1"; }
wait_active() { # wait_active UNIT SECONDS
	local i=0
	while [ "$(systemctl is-active "$1")" != active ]; do
		i=$((i + 1))
		[ $i -le $(($2 * 2)) ] || return 1
		sleep 0.5
	done
}
secs() { echo $(($(date +%s) - $1)); }

# --- 0. the state directory on a filesystem with project quotas -------------
# As an installation that wants them would have it: ext4 with the quota and
# project features, mounted with prjquota at /var/lib/sandboxd before the
# package starts, so that the daemon's first start records project mode.
modprobe loop 2>/dev/null
STATE_IMG=/var/tmp/sandboxd-state.img
if truncate -s 2G "$STATE_IMG" && mkfs.ext4 -q -F -O quota,project -E quotatype=prjquota "$STATE_IMG" &&
	mkdir -p /var/lib/sandboxd && mount -o loop,prjquota "$STATE_IMG" /var/lib/sandboxd; then
	ok state-prjquota
else
	bad state-prjquota "cannot make an ext4 with project quotas at /var/lib/sandboxd"
fi

# --- install -----------------------------------------------------------------
deb=$(ls "$H"/sandboxd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || deb=$(ls "$H"/*.deb | head -1)
note "installing ${deb##*/}"
if ! dpkg -i "$deb" >/tmp/dpkg.log 2>&1; then
	cat /tmp/dpkg.log
	bad install "dpkg -i failed"
	echo "$passed passed, $failed failed"
	exit 1
fi
systemctl enable --now sandboxd.socket 2>&1 | sed 's/^/  # /'
check install "sandboxd.socket not active or $SOCK not a socket" \
	test "$(systemctl is-active sandboxd.socket)" = active -a -S "$SOCK"

# --- 1. socket activation and READY ------------------------------------------
state=$(systemctl is-active sandboxd.service)
check socket-activation-idle "sandboxd.service is $state before any request" test "$state" = inactive
# The first request, given up as soon as the daemon fails to start (it
# waits for the base venv build otherwise).
t=$(date +%s)
(req GET /v1; echo "$code" >/tmp/first.code) &
curlpid=$!
startfail=
while kill -0 "$curlpid" 2>/dev/null; do
	if [ "$(unit_prop sandboxd.service NRestarts)" != 0 ] || [ "$(unit_prop sandboxd.service ActiveState)" = failed ]; then
		startfail=1
		kill "$curlpid" 2>/dev/null
		note "sandboxd.service failed to start: $(unit_prop sandboxd.service Result), NRestarts=$(unit_prop sandboxd.service NRestarts)"
		journalctl -u sandboxd -o cat --no-pager | tail -n 6 | sed 's/^/  # journal: /'
		sandboxd --config /etc/sandboxd/config.yaml doctor 2>&1 | sed 's/^/  # doctor: /'
		break
	fi
	# A slow start says what it is doing, so that a hang is not silent.
	if [ $(($(date +%s) - t)) -ge 120 ] && [ $((($(date +%s) - t) % 60)) = 0 ]; then
		note "still waiting for the first request after $(secs "$t")s; the journal ends:"
		journalctl -u sandboxd -o cat --no-pager | tail -n 4 | sed 's/^/  # journal: /'
		ps -eo pid,etime,time,comm --sort=-time | head -n 6 | sed 's/^/  # ps: /'
	fi
	sleep 1
done
wait "$curlpid" 2>/dev/null
if [ -z "$startfail" ]; then
	req GET /v1 # answered at once now
	note "first request: HTTP $(cat /tmp/first.code 2>/dev/null) after $(secs "$t")s (includes the base venv build)"
else
	code=000 body="the daemon failed to start"
fi
active=$(unit_prop sandboxd.service ActiveState)
if [ "$code" = 200 ] && [ "$active" = active ]; then
	ok socket-activation
else
	bad socket-activation "HTTP $code ($body), service $active"
fi
# Type=notify: the unit is active only once the daemon sent READY=1.
type=$(unit_prop sandboxd.service Type)
sub=$(unit_prop sandboxd.service SubState)
check ready "Type=$type SubState=$sub, no 'serving' in the journal" \
	eval '[ "$type" = notify ] && [ "$sub" = running ] && journalctl -u sandboxd -o cat --no-pager | grep -q "^serving"'
if [ "$code" != 200 ]; then
	# Nothing else can pass; say why once instead of timing out per check.
	jwarn=$(journalctl -u sandboxd _COMM=sandboxd -p warning -o cat --no-pager | sort | uniq -c)
	[ -z "$jwarn" ] || echo "$jwarn" | sed 's/^/  # daemon: /'
	echo "the daemon does not serve: the other checks were not run"
	echo "suite took $(secs "$t_start")s"
	echo "$passed passed, $failed failed"
	exit 1
fi
mainpid=$(unit_prop sandboxd.service MainPID)
own=$(cut -d: -f3 "/proc/$mainpid/cgroup" 2>/dev/null)
check delegate-subgroup "the daemon (pid $mainpid) is in '$own', want $UNIT/supervisor" \
	test "$own" = "$UNIT/supervisor"

# --- 2. GET /v1 on cgroup v2 ---------------------------------------------------
mode=$(jget 'd["cgroup_mode"]')
parent=$(jget 'd["cgroup_parent"]')
check info-cgroup-v2 "cgroup_mode=$mode cgroup_parent=$parent, want v2 and $UNIT" \
	test "$mode" = v2 -a "$parent" = "$UNIT"

# --- 3. limits through the v2 controllers ------------------------------------
t=$(date +%s)
if create alice lim '{"cpus":0.5,"memory_mb":64,"pids":16,"tmp_mb":16}'; then
	note "session created in $(secs "$t")s"
	d=$CG/user_alice/lim
	if [ -d "$d" ]; then
		got="cpu.max=$(cat "$d/cpu.max") memory.max=$(cat "$d/memory.max") pids.max=$(cat "$d/pids.max") memory.swap.max=$(cat "$d/memory.swap.max" 2>/dev/null)"
		check limits-files "$got" test "$got" = "cpu.max=50000 100000 memory.max=67108864 pids.max=16 memory.swap.max=0"
	else
		bad limits-files "no cgroup $d: $(find "$CG" -maxdepth 3 -type d | tr '\n' ' ')"
	fi
	# memory: a hog is OOM-killed and reported, the session lives on.
	run lim 120 'python3 -c "b = b\"x\" * (256 << 20); print(len(b))"'
	oom=$(jget 'd["oom_killed"]')
	events=$(grep -E '^oom_kill ' "$d/memory.events" 2>/dev/null)
	check memory-limit "HTTP $code oom_killed=$oom ($events): $body" test "$code" = 200 -a "$oom" = true
	# pids: forking stops at the limit, the session still answers.
	run lim 120 'python3 -c "
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    print(\"fork failed after\", n, \"errno\", e.errno)
"'
	out=$(jget 'd["stdout"]')
	maxev=$(grep -E '^max ' "$d/pids.events" 2>/dev/null)
	check pids-limit "HTTP $code stdout='$out' pids.events '$maxev'" \
		eval '[ "$code" = 200 ] && echo "$out" | grep -q "^fork failed after [0-9]* errno 11"'
	run lim 60 'echo alive'
	out=$(jget 'd["stdout"]')
	check session-survives-limits "HTTP $code stdout='$out' after the hog and the fork bomb: $body" test "$out" = alive
	# cpu: a busy loop under cpus=0.5 is throttled.
	run lim 60 'end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do :; done'
	thr=$(awk '$1 == "nr_throttled" {print $2}' "$d/cpu.stat" 2>/dev/null)
	check cpu-limit "nr_throttled=${thr:-none} in $d/cpu.stat after 2 s of busy loop" test "${thr:-0}" -gt 0
	# 4. systemctl status shows the session under the unit.
	st=$(systemctl status sandboxd --no-pager -l --lines=0 2>&1)
	check status-lists-sessions "no user_alice/lim in: $st" \
		eval 'echo "$st" | grep -q "user_alice" && echo "$st" | grep -qw lim'
	echo "$st" | sed -n '/CGroup:/,$p' | sed 's/^/  # /'
	req DELETE /v1/sessions/lim
	check delete "HTTP $code $body" test "$code" = 200
else
	bad limits "cannot create the session: $code $body"
fi

# --- 4b. disk quotas: project quotas, hard at write time ---------------------
qmode=$(REQ_TIMEOUT=60 req GET /v1 && jget 'd["quota_mode"]')
check quota-mode-project "GET /v1 quota_mode=$qmode, want project" test "$qmode" = project
doc=$(sandboxd --config /etc/sandboxd/config.yaml doctor 2>&1)
check doctor-quota "doctor: $(echo "$doc" | grep -E ' quota ')" \
	eval 'echo "$doc" | grep -qE "^ok +quota +project quotas on ext4 at /var/lib/sandboxd"'
# U = 64 MiB, S = 16 MiB, F = 100.
qdir=/var/lib/sandboxd/workspaces/user_carol
mkdir -p -m 0700 "$qdir"
echo '{"user_id":"carol","limits":{"max_workspace_size_mb":64,"max_sessions":4,"max_files_per_session":100}}' >"$qdir/quota.json"
if create carol q1; then
	run q1 120 'head -c 40M /dev/zero > /workspace/big; echo "rc=$?"; stat -c %s /workspace/big'
	out=$(jget 'd["stdout"]')
	err=$(jget 'd["stderr"]')
	size=$(echo "$out" | tail -1)
	check quota-write-inside "HTTP $code: stdout '$out' stderr '$err'" \
		eval 'echo "$out" | grep -q "^rc=[1-9]" && echo "$err" | grep -qE "Disk quota exceeded|No space left" && [ "$size" -le $((16 << 20)) ]'
	run q1 60 'rm -f /workspace/big; mkdir /workspace/many && python3 -c "
import os
n = 0
try:
    while n < 10000:
        os.close(os.open(\"/workspace/many/f%d\" % n, os.O_CREAT | os.O_WRONLY)); n += 1
except OSError as e:
    print(n, e.errno)
"'
	out=$(jget 'd["stdout"]')
	check quota-files-inside "HTTP $code: files made and errno '$out' (want at most 100, EDQUOT 122)" \
		eval 'read -r n e <<<"$out"; [ "$e" = 122 ] && [ "$n" -ge 90 ] && [ "$n" -le 100 ]'
	run q1 60 'rm -rf /workspace/many; python3 -c "
import fcntl, os
fd = os.open(\"/workspace\", os.O_RDONLY)
try:
    fcntl.ioctl(fd, 0x401c5820, bytes(28))
    print(\"allowed\")
except OSError as e:
    print(e.errno)
"'
	out=$(jget 'd["stdout"]')
	check quota-project-escape "FS_IOC_FSSETXATTR from inside: '$out' (want EPERM, 1)" test "$out" = 1
	# The state directory is a file system of its own here, so what a
	# session's mount table says of its mounts' sources names no host path.
	run q1 30 'cat /proc/self/mountinfo'
	mi=$(jget 'd["stdout"]')
	check mountinfo-no-host-path "HTTP $code; host paths: $(echo "$mi" | grep -E '/var/lib/sandboxd|/usr/bin/sandboxd' | tr '\n' ' ')" \
		eval '[ "$code" = 200 ] && echo "$mi" | grep -q "upperdir=/proc/self/fd/" && ! echo "$mi" | grep -qE "/var/lib/sandboxd|/usr/bin/sandboxd"'
	# Uploads: the daemon writes them without CAP_SYS_RESOURCE, so they
	# meet the same limits (ext4 lets that capability past them).
	head -c 20M /dev/zero >/var/tmp/upload.bin
	for root in workspace shared; do
		size=20M
		[ $root = shared ] && head -c 60M /dev/zero >/var/tmp/upload.bin && size=60M
		out=$(curl -sS --max-time 120 --unix-socket "$SOCK" -X PUT --data-binary @/var/tmp/upload.bin \
			-w '\n%{http_code}' "http://sandboxd/v1/sessions/q1/files/content?path=up.bin&root=$root" 2>&1)
		code=${out##*$'\n'}
		body=${out%$'\n'*}
		c=$(jget 'd["code"]')
		check "quota-upload-$root" "an upload of $size to $root: HTTP $code $body" test "$code" = 429 -a "$c" = quota_exceeded
	done
	rm -f /var/tmp/upload.bin
	req GET "/v1/sessions/q1/files/stat?path=up.bin"
	check quota-upload-nothing-left "stat up.bin after the refused upload: HTTP $code $body" test "$code" = 404
	req GET /v1/users/carol
	enforced=$(jget 'd["usage"]["enforced"]')
	limit=$(jget 'd["usage"]["limit_bytes"]')
	check quota-user-route "HTTP $code enforced=$enforced limit_bytes=$limit: $body" \
		test "$code" = 200 -a "$enforced" = true -a "$limit" = $((64 << 20))
	req DELETE /v1/sessions/q1
	[ "$code" = 200 ] || note "delete q1: $code $body"
else
	bad quota "cannot create a session for carol: $code $body"
fi

# --- 4c. an idle session is frozen (cgroup v2 freezer), its next call thaws it -
qdir=/var/lib/sandboxd/workspaces/user_dave
mkdir -p -m 0700 "$qdir"
echo '{"limits":{"idle_freeze_after":"1s"}}' >"$qdir/quota.json"
if create dave idle1; then
	run idle1 60 'echo kept > /tmp/t'
	frozen=
	for _ in $(seq 60); do # the janitor looks every 10 s
		req GET /v1/sessions/idle1
		[ "$(jget 'd["status"]')" = frozen ] && frozen=1 && break
		sleep 1
	done
	fz=$(cat "$CG/user_dave/idle1/cgroup.freeze" 2>/dev/null)
	check idle-frozen "status $(jget 'd["status"]'), cgroup.freeze=$fz" test -n "$frozen" -a "$fz" = 1
	run idle1 60 'cat /tmp/t'
	out=$(jget 'd["stdout"]')
	check idle-thawed "HTTP $code stdout '$out' after the freeze" test "$code" = 200 -a "$out" = kept
	req DELETE /v1/sessions/idle1
else
	bad idle "cannot create a session for dave: $code $body"
fi

# --- 5. restart with two live sessions ----------------------------------------
if create bob r1 && create bob r2; then
	run r1 60 'echo one > /workspace/f'
	c1=$code
	run r2 60 'echo two > /workspace/f; echo tmp2 > /tmp/t'
	c2=$code
	oldpid=$(unit_prop sandboxd.service MainPID)
	t=$(date +%s)
	if systemctl restart sandboxd 2>&1 && wait_active sandboxd.service 300; then
		newpid=$(unit_prop sandboxd.service MainPID)
		note "restart took $(secs "$t")s: pid $oldpid -> $newpid"
		run r1 60 'cat /workspace/f'
		o1=$(jget 'd["stdout"]')
		run r2 60 'cat /workspace/f /tmp/t'
		o2=$(jget 'd["stdout"]')
		check restart-sessions-live "writes $c1/$c2; after restart r1 '$o1' r2 '$o2' (pid $oldpid -> $newpid)" \
			test "$o1" = one -a "$o2" = "two"$'\n'"tmp2" -a "$oldpid" != "$newpid"
	else
		bad restart-sessions-live "systemctl restart failed: $(systemctl status sandboxd --no-pager -l 2>&1 | tail -20)"
	fi
else
	bad restart-sessions-live "cannot create two sessions"
fi

# --- 8. packages: the design's base, an allowed wheel offline, a refused one --
# Two tiny wheels, written by python3 itself; the allow-list allows one.
t_pkg=$(date +%s)
wheels=$(mktemp -d)
python3 - "$wheels" <<'PY'
import base64, hashlib, sys, zipfile
for name in ("vm-ok", "vm-refused"):
    dist, info = name.replace("-", "_"), name.replace("-", "_") + "-1.0.dist-info"
    files = {dist + "_mod/__init__.py": "VERSION = '1.0'\n",
             info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name,
             info + "/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    rec = "".join("%s,sha256=%s,%d\n" % (p, base64.urlsafe_b64encode(hashlib.sha256(b.encode()).digest()).rstrip(b"=").decode(), len(b))
                  for p, b in files.items())
    files[info + "/RECORD"] = rec + info + "/RECORD,,\n"
    with zipfile.ZipFile("%s/%s-1.0-py3-none-any.whl" % (sys.argv[1], dist), "w") as z:
        for p, b in files.items():
            z.writestr(p, b)
PY
echo vm-ok >>/var/lib/sandboxd/allowed_packages.txt
out=$(sandboxd --config /etc/sandboxd/config.yaml packages add "$wheels/vm_ok-1.0-py3-none-any.whl" 2>&1)
check packages-add "sandboxd packages add: $out" eval 'echo "$out" | grep -q "^added vm-ok 1.0"'
out=$(sandboxd --config /etc/sandboxd/config.yaml packages add "$wheels/vm_refused-1.0-py3-none-any.whl" 2>&1)
check packages-add-refused "sandboxd packages add of a refused wheel: $out" \
	eval 'echo "$out" | grep -q "vm-refused is not on the package allow-list"'
if create carol pk; then
	t=$(date +%s)
	run pk 300 "python3 -c 'import pandas, numpy, openpyxl, reportlab, matplotlib, requests'"
	check base-env-imports "HTTP $code in $(secs "$t")s: $body" eval '[ "$code" = 200 ] && [ "$(jget "d[\"exit_code\"]")" = 0 ]'
	req POST /v1/sessions/pk/packages '{"requirements":["vm-ok"]}'
	check package-install "HTTP $code $body" eval '[ "$code" = 200 ] && [ "$(jget "d[\"installed\"][0][\"name\"]")" = vm-ok ]'
	run pk 120 "python3 -c 'import vm_ok_mod; print(vm_ok_mod.VERSION)'"
	check package-offline-import "HTTP $code $body" test "$(jget 'd["stdout"]')" = 1.0
	req POST /v1/sessions/pk/packages '{"requirements":["vm-refused"]}'
	check package-refused "HTTP $code $body" \
		eval '[ "$code" = 403 ] && [ "$(jget "d[\"code\"]")" = package_not_allowed ] && echo "$body" | grep -q "not on the package allow-list"'
	run pk 300 'pip install vm-refused'
	check pip-refused "HTTP $code $body" eval 'jget "d[\"stderr\"]" | grep -q "vm-refused is not on this sandbox.s package allow-list"'
	req GET /v1
	note "base env: $(jget '{"id": d["env"]["id"], "missing": [m["requirement"] for m in d["env"]["missing"]]}')"
	req DELETE /v1/sessions/pk
else
	bad packages "cannot create the session: $code $body"
fi
note "packages took $(secs "$t_pkg")s"

# --- 7. the journal ------------------------------------------------------------
jall=$(journalctl -u sandboxd -o cat --no-pager)
check journal "no 'serving' or 'request' lines in journalctl -u sandboxd" \
	eval 'echo "$jall" | grep -q "^serving" && echo "$jall" | grep -q "^request "'
jses=$(journalctl -u sandboxd SANDBOXD_SESSION=r1 -o cat --no-pager)
juser=$(journalctl -u sandboxd SANDBOXD_USER=bob -o cat --no-pager)
check journal-fields "SANDBOXD_SESSION=r1: '$jses'; SANDBOXD_USER=bob: '$juser'" \
	test -n "$jses" -a -n "$juser"
note "SANDBOXD_SESSION=r1: $(echo "$jses" | head -3 | tr '\n' '|')"
# Under the real unit (its sandboxing included) the daemon runs with every
# feature on: no warning of its own.
jwarn=$(journalctl -u sandboxd _COMM=sandboxd -p warning -o cat --no-pager | sort | uniq -c)
check journal-no-warnings "the daemon warned: $jwarn" test -z "$jwarn"

# --- 6. delete everything, stop both units: nothing left ---------------------
req GET /v1/sessions
for id in $(jget '" ".join(s["id"] for s in d["sessions"])'); do
	req DELETE "/v1/sessions/$id"
	[ "$code" = 200 ] || note "delete $id: $code $body"
done
systemctl stop sandboxd.service sandboxd.socket
sleep 1
leaks=
for u in sandboxd.service sandboxd.socket; do
	[ "$(systemctl is-active $u)" = inactive ] || leaks+=" $u is $(systemctl is-active $u);"
done
if [ -d "$CG" ]; then
	procs=$(find "$CG" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')
	[ -z "${procs// /}" ] || leaks+=" processes in $CG: $procs;"
	leaks+=" cgroups left: $(find "$CG" -mindepth 1 -type d | tr '\n' ' ');"
fi
for p in /proc/[0-9]*; do
	r=$(readlink "$p/root" 2>/dev/null) || continue
	u=$(awk '/^Uid:/ {print $2}' "$p/status" 2>/dev/null)
	if [ "$r" != / ] || [ "$u" = 10000 ]; then
		leaks+=" process ${p#/proc/} ($(tr '\0' ' ' <"$p/cmdline"), root $r, uid $u);"
	fi
done
# The state directory itself is the suite's own mount (project quotas).
under=$(awk '$5 ~ "^/var/lib/sandboxd/" {print $5}' /proc/1/mountinfo)
[ -z "$under" ] || leaks+=" mounts under /var/lib/sandboxd: $(echo "$under" | tr '\n' ' ');"
left=$(ls -A /var/lib/sandboxd/containers 2>/dev/null)
[ -z "$left" ] || leaks+=" container state left: $left;"
[ ! -e "$SOCK" ] || leaks+=" $SOCK still exists;"
check stop-nothing-leaked "${leaks:-}" test -z "$leaks"
systemctl start sandboxd.socket
req GET /v1
n=$(jget 'd["sessions"]')
check start-again "HTTP $code sessions=$n after starting the socket again: $body" test "$code" = 200 -a "$n" = 0

echo "suite took $(secs "$t_start")s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
