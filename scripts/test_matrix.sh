#!/usr/bin/env bash
# Run the whole test suite (scripts/test.sh) on every supported QGIS version:
#   3.22  Debian 12 bookworm
#   3.40  Debian 13 trixie
#   3.44  Debian 13 trixie-backports
# The version the host's Debian has runs on the host; the others run in chroots made
# with debootstrap and cached in $ISOTILES_MATRIX_CACHE (default /var/cache/isotiles-matrix).
#
#   bash scripts/test_matrix.sh                   every version
#   bash scripts/test_matrix.sh 3.40 3.44         some versions (or ISOTILES_MATRIX_VERSIONS="3.40 3.44")
#   bash scripts/test_matrix.sh 3.40 -- -x tests/unit     the arguments after the versions go to pytest
#
# Chroots need root (sudo is used when not root). A chroot is built once (debootstrap,
# then QGIS from apt), marked done by a stamp file, and reused; its venv lives inside it
# (/opt/isotiles-venv), never in the repository. Logs: .build/matrix/<version>.log.
# The chroots are built side by side, then the versions are tested one after another.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${ISOTILES_MATRIX_CACHE:-/var/cache/isotiles-matrix}"
MIRROR="${ISOTILES_MATRIX_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${ISOTILES_MATRIX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
LOGS="$ROOT/.build/matrix"
CHROOT_VENV=/opt/isotiles-venv
QGIS_PACKAGES=(qgis python3-qgis qgis-providers)
ALL_VERSIONS=(3.22 3.40 3.44)
RECIPE_VERSION=1  # bump to rebuild every cached chroot

suite_of() { case "$1" in 3.22) echo bookworm ;; 3.40 | 3.44) echo trixie ;; *) return 1 ;; esac; }
release_of() { case "$1" in 3.44) echo trixie-backports ;; *) echo "" ;; esac; }
chroot_name() { local r; r=$(release_of "$1"); echo "${r:-$(suite_of "$1")}"; }

# ---------------------------------------------------------------- arguments
versions=()
while [ $# -gt 0 ]; do
  case "$1" in
    [0-9].[0-9]* | [0-9].[0-9][0-9]*) versions+=("$1"); shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
PYTEST_ARGS=("$@")
[ ${#versions[@]} -gt 0 ] || read -r -a versions <<< "${ISOTILES_MATRIX_VERSIONS:-${ALL_VERSIONS[*]}}"
for v in "${versions[@]}"; do
  suite_of "$v" >/dev/null || { echo "test_matrix: unknown QGIS version $v (known: ${ALL_VERSIONS[*]})" >&2; exit 2; }
done

# ---------------------------------------------------------------- the host
# The host runs the version its QGIS package is (or, before set-up, its Debian release ships).
host_version=""
if command -v dpkg-query >/dev/null; then
  host_version=$(dpkg-query -W -f '${Version}' qgis 2>/dev/null | sed -nE 's/^([0-9]+:)?([0-9]+\.[0-9]+)\..*/\2/p')
fi
if [ -z "$host_version" ] && [ -r /etc/os-release ]; then
  case "$(. /etc/os-release; echo "${VERSION_CODENAME:-}")" in
    bookworm) host_version=3.22 ;;
    trixie) host_version=3.40 ;;
  esac
fi
echo "test_matrix: versions ${versions[*]}; the host runs QGIS ${host_version:-none (not a Debian 12/13 host)}"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---------------------------------------------------------------- mounts, always undone
mounted_roots=()
bg_pids=()

unmount_under() {  # every mount at or below $1, deepest first
  local dir=$1 m
  for m in $(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    $SUDO umount "$m" 2>/dev/null || $SUDO umount -l "$m" 2>/dev/null || echo "test_matrix: could not unmount $m" >&2
  done
}

tree_of() {  # a process and all its descendants
  local c
  echo "$1"
  for c in $(pgrep -P "$1"); do tree_of "$c"; done
}

cleanup() {
  local p d pids=() i
  for p in "${bg_pids[@]}"; do
    kill -0 "$p" 2>/dev/null && pids+=($(tree_of "$p"))
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 1; done
    kill -KILL "${pids[@]}" 2>/dev/null
  fi
  for d in "${mounted_roots[@]}"; do unmount_under "$d"; done
}
trap cleanup EXIT
trap 'echo "test_matrix: interrupted" >&2; exit 130' INT TERM

# Run "$@" in the background, its output into the log $1 and onto the screen; waiting on it with
# the wait builtin lets an interrupt stop it at once (the EXIT trap then ends it and unmounts).
run_logged() {
  local log=$1 pid tail_pid r
  shift
  : >"$log"  # emptied first, or tail could show the last run's log
  "$@" >"$log" 2>&1 &
  pid=$!
  bg_pids+=("$pid")
  tail -n +1 -f --pid="$pid" "$log" &
  tail_pid=$!
  wait "$pid"
  r=$?
  wait "$tail_pid" 2>/dev/null
  return $r
}

bind() {  # bind $1 on $2, read-only with a third argument
  $SUDO mkdir -p "$2" && $SUDO mount --bind "$1" "$2" && $SUDO mount --make-rslave "$2" || return 1
  [ -z "${3:-}" ] || $SUDO mount -o remount,bind,ro "$2"
}

mount_chroot() {
  local dir=$1
  unmount_under "$dir"  # left over from a run that was killed
  $SUDO mkdir -p "$dir/proc" "$dir/sys" "$dir/dev"
  $SUDO mount -t proc proc "$dir/proc" || return 1
  bind /sys "$dir/sys" || return 1
  bind /dev "$dir/dev" || return 1
  bind /dev/pts "$dir/dev/pts" || return 1
  if [ -d /dev/shm ]; then bind /dev/shm "$dir/dev/shm" || return 1; fi
  bind "$ROOT" "$dir$ROOT" || return 1
  # What pip and Python need to reach package indexes the way the host does: name resolution, the CA
  # bundle, pip's settings (system-wide, and the user's as root's), the local folders they point at.
  local f user_conf=("${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" "$HOME/.pip/pip.conf")
  for f in /etc/resolv.conf /etc/hosts /etc/ssl/certs/ca-certificates.crt /etc/pip.conf /etc/xdg/pip/pip.conf \
           /etc/xdg/pip/constraints.txt ${PIP_CERT:+"$PIP_CERT"} ${PIP_CONFIG_FILE:+"$PIP_CONFIG_FILE"}; do
    copy_in "$f" "$dir$f"
  done
  copy_in "${user_conf[0]}" "$dir/root/.config/pip/pip.conf"
  copy_in "${user_conf[1]}" "$dir/root/.pip/pip.conf"
  for f in $(pip_local_dirs /etc/pip.conf /etc/xdg/pip/pip.conf ${PIP_CONFIG_FILE:+"$PIP_CONFIG_FILE"} "${user_conf[@]}"); do
    bind "$f" "$dir$f" ro || return 1
  done
}

copy_in() {  # copy a host file into a chroot if it exists
  [ -f "$1" ] || return 0
  $SUDO mkdir -p "$(dirname "$2")" && $SUDO rm -f "$2" && $SUDO cp -L "$1" "$2"
}

pip_local_dirs() {  # local folders that pip's settings name: find-links, file:// indexes
  local f t
  { for f in "$@"; do [ -f "$f" ] && cat "$f"; done
    echo "${PIP_FIND_LINKS:-} ${PIP_INDEX_URL:-} ${PIP_EXTRA_INDEX_URL:-}"; } | tr ' \t=' '\n\n\n' \
    | sed -nE 's|^(file://)?(/[^/].*)$|\2|p' | sed -E 's|/+$||; s|/simple$||' | sort -u \
    | while read -r t; do [ -d "$t" ] && echo "$t"; done
}

# Run a command in a chroot with a clean environment plus the host's pip, proxy and CA settings.
in_chroot() {
  local dir=$1 v=$2; shift 2
  local env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
             TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive
             ISOTILES_VENV="$CHROOT_VENV" ISOTILES_APT_RELEASE="$(release_of "$v")")
  local name
  while IFS= read -r name; do
    env+=("$name=${!name}")
  done < <(compgen -e | grep -E '^(PIP_|https?_proxy$|HTTPS?_PROXY$|no_proxy$|NO_PROXY$|.*CA_CERTS|.*CA_BUNDLE$|SSL_CERT_|IMAGE_BACKEND$|PYTEST_)')
  $SUDO chroot "$dir" /usr/bin/env -i "${env[@]}" "$@"
}

# ---------------------------------------------------------------- building a chroot
build_chroot() {  # $1 version; debootstrap + QGIS from apt once (stamped), then scripts/setup.sh
  local v=$1 suite release dir stamp recipe sources
  suite=$(suite_of "$v"); release=$(release_of "$v"); dir="$CACHE/$(chroot_name "$v")"; stamp="$dir.stamp"
  recipe="recipe=$RECIPE_VERSION suite=$suite release=$release mirror=$MIRROR packages=${QGIS_PACKAGES[*]}"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$recipe" ]; then
    echo "== $(date +%T) building $dir ($suite${release:+, QGIS from $release})"
    unmount_under "$dir"
    $SUDO rm -rf --one-file-system "$dir" "$stamp"
    $SUDO mkdir -p "$CACHE"
    $SUDO debootstrap --variant=minbase --include=ca-certificates "$suite" "$dir" "$MIRROR" || return 1
    sources="Types: deb
URIs: $MIRROR
Suites: $suite $suite-updates${release:+ $release}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"
    echo "$sources" | $SUDO tee "$dir/etc/apt/sources.list.d/debian.sources" >/dev/null
    $SUDO rm -f "$dir/etc/apt/sources.list"
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$dir/usr/sbin/policy-rc.d" >/dev/null  # no services in a chroot
    $SUDO chmod 755 "$dir/usr/sbin/policy-rc.d"
    mount_chroot "$dir" || return 1
    in_chroot "$dir" "$v" apt-get update -q || return 1
    in_chroot "$dir" "$v" apt-get install -y -q --no-install-recommends ${release:+-t "$release"} "${QGIS_PACKAGES[@]}" \
      || return 1
    in_chroot "$dir" "$v" apt-get clean
    echo "$recipe" | $SUDO tee "$stamp" >/dev/null
  else
    echo "== $(date +%T) $dir is built ($stamp)"
    mount_chroot "$dir" || return 1
  fi
  # The rest of the Debian packages and the venv: scripts/setup.sh, as on any Debian machine.
  in_chroot "$dir" "$v" bash -c 'cd "$1" && bash scripts/setup.sh' _ "$ROOT"
}

test_in_chroot() {  # $1 version, $2 chroot: scripts/test.sh there, the chroot locked and mounted meanwhile
  local v=$1 dir=$2 r
  exec 9>"$dir.lock"
  flock 9
  mount_chroot "$dir" || return 3
  in_chroot "$dir" "$v" bash -c 'cd "$1" && shift && bash scripts/test.sh "$@"' _ "$ROOT" "${PYTEST_ARGS[@]}"
  r=$?
  unmount_under "$dir"
  return $r
}

# ---------------------------------------------------------------- running
mkdir -p "$LOGS"
chroot_versions=()
for v in "${versions[@]}"; do [ "$v" = "$host_version" ] || chroot_versions+=("$v"); done
if [ ${#chroot_versions[@]} -gt 0 ]; then
  # a fresh machine has neither debootstrap nor (always) the archive keys that check what it downloads
  if ! command -v debootstrap >/dev/null || [ ! -s /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    echo "test_matrix: installing debootstrap and debian-archive-keyring (QGIS ${chroot_versions[*]} run in chroots)"
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        debootstrap debian-archive-keyring; } >"$LOGS/debootstrap-install.log" 2>&1 \
      || { echo "test_matrix: could not install debootstrap (see $LOGS/debootstrap-install.log)" >&2; exit 2; }
  fi
fi

# Each chroot is locked while in use (flock on <chroot>.lock) and built in the background.
declare -A build_pid
for v in "${chroot_versions[@]}"; do
  dir="$CACHE/$(chroot_name "$v")"
  mounted_roots+=("$dir")
  $SUDO mkdir -p "$CACHE"
  [ -w "$dir.lock" ] || { $SUDO touch "$dir.lock" && $SUDO chmod 666 "$dir.lock"; }
  (
    exec 9>"$dir.lock"
    flock 9
    build_chroot "$v"
    r=$?
    unmount_under "$dir"
    exit $r
  ) >"$LOGS/$v-build.log" 2>&1 &
  build_pid[$v]=$!
  bg_pids+=($!)
  echo "test_matrix: preparing the QGIS $v chroot in the background (log: .build/matrix/$v-build.log)"
done

# The tests start once every chroot is ready: the suite has tests that time things, and they fail
# when a build (dpkg, pip) shares the two cores with them.
declare -A build_rc
for v in "${chroot_versions[@]}"; do
  echo "== $(date +%T) waiting for the QGIS $v chroot"
  wait "${build_pid[$v]}"
  build_rc[$v]=$?
done

declare -A rc secs where
for v in "${versions[@]}"; do
  log="$LOGS/$v.log"
  start=$SECONDS
  if [ "$v" = "$host_version" ]; then
    where[$v]="host"
    echo "== $(date +%T) QGIS $v on the host: bash scripts/test.sh ${PYTEST_ARGS[*]}"
    run_logged "$log" bash "$ROOT/scripts/test.sh" "${PYTEST_ARGS[@]}"
    rc[$v]=$?
  else
    dir="$CACHE/$(chroot_name "$v")"
    where[$v]="chroot $(chroot_name "$v")"
    if [ "${build_rc[$v]}" -ne 0 ]; then
      echo "test_matrix: building the QGIS $v chroot failed; the end of .build/matrix/$v-build.log:" >&2
      tail -n 30 "$LOGS/$v-build.log" >&2
      rc[$v]=3; secs[$v]=0; where[$v]+=" (build failed)"
      echo "build failed" >"$log"
      continue
    fi
    start=$SECONDS
    echo "== $(date +%T) QGIS $v in $dir: bash scripts/test.sh ${PYTEST_ARGS[*]}"
    run_logged "$log" test_in_chroot "$v" "$dir"
    rc[$v]=$?
  fi
  secs[$v]=$((SECONDS - start))
done

# ---------------------------------------------------------------- summary
echo
echo "QGIS version matrix (total ${SECONDS} s; logs in .build/matrix/)"
printf '%-6s %-50s %-7s %8s  %s\n' QGIS where result seconds pytest
failed=0
for v in "${versions[@]}"; do
  log="$LOGS/$v.log"
  qgis=$(sed -nE 's/^setup: ok \(QGIS ([^,]+),.*/\1/p' "$log" | tail -n 1)
  line=$(grep -E '^(=+ )?(no tests ran|[0-9]+ (passed|failed|skipped|deselected|errors?|xfailed|xpassed|warnings?)).* in [0-9.]+s' \
         "$log" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
  r=${rc[$v]}
  if [ "$r" -eq 0 ]; then result=ok; else result="FAILED"; failed=1; fi
  if [ "$r" -gt 128 ]; then  # pytest died on a signal: name the test that was running
    crash=$(grep -A80 'Fatal Python error' "$log" \
            | sed -nE 's|.*File "[^"]*/(tests/[^"]+\.py)", line [0-9]+ in (test_[A-Za-z0-9_]+).*|\1::\2|p' | head -n 1)
    line="${line:+$line, then }pytest died on signal $((r - 128))${crash:+ in $crash}"
  elif [ -z "$line" ]; then
    line="no pytest summary (exit $r)"
  fi
  printf '%-6s %-50s %-7s %8s  %s\n' "$v" "${where[$v]}${qgis:+ ($qgis)}" "$result" "${secs[$v]}" "$line"
done
exit $failed
