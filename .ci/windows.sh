#!/usr/bin/env bash
# Windows, run and not only compiled: the crate's tests for
# x86_64-pc-windows-gnu, cross-built with mingw-w64 and run under Wine
# (Debian 12's Wine 8.0). Called by .ci/run; runs alone too. Idempotent:
# installs only what is missing, rebuilds the stub DLL only when its source
# changed, keeps the Wine prefix (under the target dir) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"

# Debian's wine64 package installs its loader as /usr/lib/wine/wine64 (the
# `wine` package adds the /usr/bin wrappers); either will do.
find_wine() { command -v wine64 || command -v wine || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || true; }
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
[ -n "$(find_wine)" ] || need+=(wine64)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
wine="$(find_wine)"
# Debian's wine64 installs the server as /usr/lib/wine/wineserver64, not on
# PATH (a bare `wineserver` here found nothing, silently).
find_wineserver() { type -P wineserver || type -P wineserver64 || { [ -x "$(dirname "$wine")/wineserver64" ] && echo "$(dirname "$wine")/wineserver64"; } || true; }
wineserver="$(find_wineserver)"
[ -n "$wineserver" ] || { echo "no wineserver next to $wine" >&2; exit 1; }
rustup target add x86_64-pc-windows-gnu 2>/dev/null
echo "runner: $wine ($("$wine" --version))"

export WINEDEBUG=-all
export WINEPREFIX="$target_dir/wine-prefix"
# No Mono or Gecko installers (nothing here needs .NET or HTML): without
# this, a fresh prefix would ask for them.
export WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo "creating the Wine prefix $WINEPREFIX"
  "$wine" wineboot --init >/dev/null 2>&1
  "$wineserver" -w
fi
# One server for the whole run: by default it exits 3 s after its last
# client, and a test binary that starts in that moment finds it going away
# ("wine client error:0: recvmsg: Connection reset by peer": a clean-clone
# CI run failed so, starting an empty test binary).
"$wineserver" -p
trap '"$wineserver" -k 2>/dev/null || true' EXIT
# Wine's own services (services.exe, winedevice.exe, ...) start with the
# first program and live as long as the server: started here, detached from
# the log pipes below, or they would hold `tee` open after the tests.
"$wine" wineboot </dev/null >/dev/null 2>&1

# The ProcessPrng stand-in (see .ci/wine/bcryptprimitives.c for why, and
# until when), placed in the prefix's system directory: Wine 8.0 has no
# bcryptprimitives.dll of its own there, and every executable finds it —
# the test binaries, the children they spawn, and rustdoc's doctest
# programs, which are built in temporary directories.
dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
src=.ci/wine/bcryptprimitives.c
if [ ! -f "$dll" ] || [ "$src" -nt "$dll" ] || [ .ci/wine/bcryptprimitives.def -nt "$dll" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -s -o "$dll" "$src" .ci/wine/bcryptprimitives.def -ladvapi32
fi

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine"
log="$target_dir/windows-tests.log"
# As for the workspace in .ci/run: a hang fails, and so does a run that
# passed too few tests (a runner that starts nothing must not pass).
timeout 1800 cargo test -p zk-nalloc --target x86_64-pc-windows-gnu --no-fail-fast 2>&1 | tee "$log"
timeout 600 cargo test -p zk-nalloc --target x86_64-pc-windows-gnu --no-fail-fast --features fault-injection \
  --test fault_injection --test wipe_evidence 2>&1 | tee -a "$log"
# Hardened mode, as .ci/run runs it on Linux: misuse aborts with the exact
# message, no false positives.
timeout 900 cargo test -p zk-nalloc --target x86_64-pc-windows-gnu --no-fail-fast --features hardened \
  --test hardened --test global_alloc --test witness --test arenas 2>&1 | tee -a "$log"
# Field elements as secrets, read back through ReadProcessMemory.
timeout 900 cargo test -p zk-nalloc --target x86_64-pc-windows-gnu --no-fail-fast \
  --features ark-ff,pasta,plonky3,bytemuck --test field_secrets 2>&1 | tee -a "$log"
n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
floor=145
echo "Windows (Wine) tests passed: $n (floor $floor)"
[ "$n" -ge "$floor" ] || { echo "expected at least $floor tests to pass under Wine, counted $n" >&2; exit 1; }
