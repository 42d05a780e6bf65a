#!/usr/bin/env bash
# Make the native, Apache-only TimescaleDB extension available to Debian's
# PostgreSQL 15 (/usr/lib/postgresql/15) on a bookworm machine whose only
# package source is Debian's own apt archive.
#
# No registry carries a TimescaleDB binary for bookworm, so this script builds
# Debian trixie's *source* package `timescaledb` against bookworm's
# postgresql-server-dev-15:
#   1. installs the build dependencies with apt-get (apt-get update only if needed);
#   2. fetches the source with `apt-get source`, using a PRIVATE apt config
#      (sources list, lists dir and cache dir inside the build dir) whose single
#      deb-src line reuses the mirror URI already configured on this machine for
#      bookworm, with suite trixie. The machine's global apt sources are never
#      touched, and no archive address is written in this file;
#   3. builds with cmake -DAPACHE_ONLY=ON (no TSL features: continuous aggregates
#      and compression are not available) and runs `make install`.
#
# Postgres must then be started with `-c shared_preload_libraries=timescaledb`.
#
# Usage:
#   scripts/install-timescaledb.sh [BUILD_DIR]   install (no-op when already installed)
#   scripts/install-timescaledb.sh --check       exit 0 if installed, 1 if not; changes nothing
#
# Environment:
#   TSDB_BUILD_DIR       build dir (same as the argument). Default: a mktemp dir,
#                        removed on success and kept on failure. A dir given by the
#                        caller is kept, and a source tree already fetched into it
#                        is reused.
#   TSDB_APT_URI         mirror URI to fetch the trixie source from (default: the
#                        first URIs: of this machine's stanza for its own release).
#   TSDB_SOURCE_SUITE    suite holding the source package (default: trixie).
#   TSDB_APT_KEYRING     keyring that signs that suite
#                        (default: /usr/share/keyrings/debian-archive-keyring.gpg).
#   TSDB_ALLOW_UNSIGNED  set to 1 to retry with [trusted=yes] if the suite's
#                        signature cannot be checked with that keyring (fallback
#                        for machines whose debian-archive-keyring predates the
#                        trixie keys; upgrading debian-archive-keyring is better).
set -euo pipefail

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
SOURCE_PACKAGE=timescaledb
SOURCE_SUITE="${TSDB_SOURCE_SUITE:-trixie}"
APT_KEYRING="${TSDB_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
PROG="install-timescaledb"

# --- installed? (must stay fast: this is the common path) ------------------
ext_paths() {
    if [[ -x "$PG_CONFIG" ]]; then
        PKGLIBDIR="$("$PG_CONFIG" --pkglibdir)"
        SHAREDIR="$("$PG_CONFIG" --sharedir)"
    else
        PKGLIBDIR="/usr/lib/postgresql/${PG_MAJOR}/lib"
        SHAREDIR="/usr/share/postgresql/${PG_MAJOR}"
    fi
    SO_FILE="${PKGLIBDIR}/timescaledb.so"
    CONTROL_FILE="${SHAREDIR}/extension/timescaledb.control"
}

is_installed() {
    ext_paths
    [[ -f "$SO_FILE" && -f "$CONTROL_FILE" ]]
}

installed_version() {
    sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$CONTROL_FILE" 2>/dev/null | head -n 1
}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }

MODE=install
BUILD_DIR_ARG=""
for arg in "$@"; do
    case "$arg" in
        --check) MODE=check ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "$PROG: unknown option: $arg (see --help)" >&2; exit 2 ;;
        *) [[ -z "$BUILD_DIR_ARG" ]] || { echo "$PROG: only one BUILD_DIR allowed" >&2; exit 2; }
           BUILD_DIR_ARG="$arg" ;;
    esac
done

if [[ "$MODE" == check ]]; then
    if is_installed; then
        echo "$PROG: timescaledb $(installed_version) is installed for PostgreSQL ${PG_MAJOR} ($SO_FILE)"
        exit 0
    fi
    echo "$PROG: timescaledb is NOT installed for PostgreSQL ${PG_MAJOR} (no $SO_FILE or $CONTROL_FILE)"
    exit 1
fi

if is_installed; then
    echo "$PROG: timescaledb $(installed_version) already installed for PostgreSQL ${PG_MAJOR}; nothing to do"
    exit 0
fi

# --- full install ----------------------------------------------------------
START_NS="$(date +%s%N)"
elapsed() { awk -v s="$START_NS" -v e="$(date +%s%N)" 'BEGIN { printf "%.1fs", (e - s) / 1e9 }'; }

if [[ "$(id -u)" -ne 0 ]]; then
    echo "$PROG: must run as root (apt-get install, make install into /usr/lib/postgresql)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# One installer at a time (a CI job and a dev shell may race); re-check after waiting.
LOCK_FILE="/run/lock/${PROG}.lock"
[[ -d /run/lock ]] || LOCK_FILE="/tmp/${PROG}.lock"
exec 9>"$LOCK_FILE"
if ! flock -w 900 9; then
    echo "$PROG: FAILED at step 'lock': another install holds $LOCK_FILE for over 15 min" >&2
    exit 1
fi
if is_installed; then
    echo "$PROG: timescaledb $(installed_version) was installed by a concurrent run; nothing to do"
    exit 0
fi

BUILD_DIR="${BUILD_DIR_ARG:-${TSDB_BUILD_DIR:-}}"
OWN_BUILD_DIR=0
if [[ -z "$BUILD_DIR" ]]; then
    BUILD_DIR="$(mktemp -d -t "${PROG}.XXXXXX")"
    OWN_BUILD_DIR=1
else
    mkdir -p "$BUILD_DIR"
    BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
fi
LOG="${BUILD_DIR}/install.log"
: >"$LOG"

SUCCESS=0
on_exit() {
    if [[ "$SUCCESS" == 1 ]]; then
        [[ "$OWN_BUILD_DIR" == 1 ]] && rm -rf "$BUILD_DIR"
    else
        echo "$PROG: failed after $(elapsed); build dir and full log kept: $LOG" >&2
    fi
}
trap on_exit EXIT

fail() {  # fail STEP MESSAGE
    echo "$PROG: FAILED at step '$1': $2" >&2
    echo "---- last 30 lines of $LOG ----" >&2
    tail -n 30 "$LOG" >&2 || true
    echo "----" >&2
    exit 1
}

# step NAME CMD...: run CMD with its output in the log; on failure name the step, show the log tail.
step() {
    local name="$1"; shift
    echo "$PROG: [$(elapsed)] $name" >&2
    printf '\n===== %s: %s\n' "$name" "$*" >>"$LOG"
    local rc=0
    "$@" >>"$LOG" 2>&1 || rc=$?
    [[ "$rc" == 0 ]] || fail "$name" "command exited with status $rc: $*"
}

# --- 1. build dependencies -------------------------------------------------
# postgresql-client-N (pulled by postgresql-N) ships pg_config; dpkg-dev and
# xz-utils are needed by `apt-get source` to unpack the 3.0 (quilt) package.
PACKAGES=(
    "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}"
    build-essential gcc make libc6-dev cmake libssl-dev
    dpkg-dev xz-utils debian-archive-keyring
)
pkg_installed() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii " ]]; }
MISSING=()
for p in "${PACKAGES[@]}"; do pkg_installed "$p" || MISSING+=("$p"); done

APT_INSTALL=(apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300)
APT_UPDATE=(apt-get update -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
if ((${#MISSING[@]})); then
    need_update=0
    for p in "${MISSING[@]}"; do
        apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || { need_update=1; break; }
    done
    updated=0
    if [[ "$need_update" == 1 ]]; then
        step "apt-get update" "${APT_UPDATE[@]}"
        updated=1
    fi
    echo "$PROG: [$(elapsed)] apt-get install ${MISSING[*]}" >&2
    printf '\n===== apt-get install: %s\n' "${MISSING[*]}" >>"$LOG"
    if ! "${APT_INSTALL[@]}" "${MISSING[@]}" >>"$LOG" 2>&1; then
        # Stale package lists (404 on a superseded version): refresh once and retry.
        [[ "$updated" == 0 ]] || fail "apt-get install" "could not install: ${MISSING[*]}"
        step "apt-get update (retry after failed install)" "${APT_UPDATE[@]}"
        step "apt-get install (retry)" "${APT_INSTALL[@]}" "${MISSING[@]}"
    fi
fi
[[ -x "$PG_CONFIG" ]] || fail "check pg_config" "$PG_CONFIG missing after installing postgresql-${PG_MAJOR}"
[[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ]] ||
    fail "check server headers" "postgres.h missing: is postgresql-server-dev-${PG_MAJOR} installed?"

# --- 2. fetch the source with a private apt config -------------------------
# shellcheck disable=SC1091
CODENAME="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
CODENAME="${CODENAME:-bookworm}"

# First URI of a deb822 stanza of Types deb whose Suites include $CODENAME exactly.
uri_from_deb822() {
    awk -v want="$CODENAME" '
        function flush(   a) {
            if (!done && enabled != "no" && (" " types " ") ~ / deb / &&
                (" " suites " ") ~ (" " want " ") && uris != "") {
                split(uris, a, /[ \t]+/); print a[1]; done = 1
            }
            types = suites = uris = enabled = ""
        }
        /^[ \t]*$/ { flush(); next }
        /^#/       { next }
        /^[ \t]/   { next }   # continuation line (e.g. an inline Signed-By key)
        {
            k = $0; sub(/:.*/, "", k); k = tolower(k)
            v = $0; sub(/^[^:]*:[ \t]*/, "", v); gsub(/[ \t]+/, " ", v); sub(/ $/, "", v)
            if (k == "types") types = v
            else if (k == "suites") suites = v
            else if (k == "uris") uris = v
            else if (k == "enabled") enabled = tolower(v)
        }
        END { flush() }' "$@" 2>/dev/null
}

# URI of a one-line "deb [opts] URI SUITE COMPONENTS..." whose suite is $CODENAME.
uri_from_list() {
    awk -v want="$CODENAME" '
        /^[ \t]*#/ { next }
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == want || $(i + 1) == want "/") { print $i; exit }
        }' "$@" 2>/dev/null
}

find_mirror_uri() {
    local uri="" f
    if [[ -n "${TSDB_APT_URI:-}" ]]; then echo "$TSDB_APT_URI"; return; fi
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri="$(uri_from_deb822 "$f" | head -n 1)"
        [[ -z "$uri" ]] || { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri="$(uri_from_list "$f" | head -n 1)"
        [[ -z "$uri" ]] || { echo "$uri"; return; }
    done
}

SRC_DIR="${BUILD_DIR}/src"
src_tree() { find "$SRC_DIR" -mindepth 1 -maxdepth 1 -type d -name "${SOURCE_PACKAGE}-*" 2>/dev/null | sort | tail -n 1; }
FETCH_STAMP="${SRC_DIR}/.fetched"

if [[ -f "$FETCH_STAMP" && -n "$(src_tree)" ]]; then
    echo "$PROG: [$(elapsed)] reusing source already fetched in $(src_tree)" >&2
else
    MIRROR_URI="$(find_mirror_uri)"
    [[ -n "$MIRROR_URI" ]] || fail "find apt mirror" \
        "no 'deb' entry for suite $CODENAME in /etc/apt/sources.list{,.d/*} (set TSDB_APT_URI)"
    [[ -f "$APT_KEYRING" ]] || fail "find apt keyring" "$APT_KEYRING missing (install debian-archive-keyring)"

    APT_DIR="${BUILD_DIR}/apt"
    rm -rf "$APT_DIR" "$SRC_DIR"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d" "$SRC_DIR"
    # Everything apt reads or writes for this fetch lives in $APT_DIR; the
    # machine's own sources, lists and caches stay untouched.
    PRIVATE_APT=(
        -o "Dir::Etc::SourceList=${APT_DIR}/sources.list"
        -o "Dir::Etc::SourceParts=${APT_DIR}/sources.list.d"
        -o "Dir::State::Lists=${APT_DIR}/lists"
        -o "Dir::Cache=${APT_DIR}/cache"
        -o "APT::Sandbox::User=root"          # the private dirs are root-only (mktemp)
        -o "Acquire::Check-Valid-Until=false" # mirrors pinned to a snapshot date
        -o "Acquire::Languages=none"
        -o "Acquire::Retries=3"
    )
    write_sources() {  # write_sources OPTIONS
        echo "deb-src [$1] ${MIRROR_URI} ${SOURCE_SUITE} main" >"${APT_DIR}/sources.list"
    }
    write_sources "signed-by=${APT_KEYRING}"
    echo "$PROG: [$(elapsed)] source: deb-src ${MIRROR_URI} ${SOURCE_SUITE} main (private apt config in $APT_DIR)" >&2
    printf '\n===== private sources.list:\n%s\n' "$(cat "${APT_DIR}/sources.list")" >>"$LOG"
    UPDATE_LOG="${APT_DIR}/update.log"
    printf '\n===== apt-get update (private, %s sources)\n' "$SOURCE_SUITE" >>"$LOG"
    echo "$PROG: [$(elapsed)] apt-get update (private, ${SOURCE_SUITE} sources)" >&2
    rc=0
    apt-get "${PRIVATE_APT[@]}" --error-on=any update >"$UPDATE_LOG" 2>&1 || rc=$?
    cat "$UPDATE_LOG" >>"$LOG"
    if [[ "$rc" != 0 ]]; then
        if grep -qE 'NO_PUBKEY|EXPKEYSIG|is not signed|signatures (couldn.t be verified|were invalid)' "$UPDATE_LOG"; then
            [[ "${TSDB_ALLOW_UNSIGNED:-0}" == 1 ]] || fail "apt-get update (private, ${SOURCE_SUITE} sources)" \
                "${SOURCE_SUITE}'s signature can't be checked with $APT_KEYRING: upgrade debian-archive-keyring, or set TSDB_ALLOW_UNSIGNED=1"
            echo "$PROG: WARNING: ${SOURCE_SUITE}'s signature can't be checked with $APT_KEYRING;" \
                "TSDB_ALLOW_UNSIGNED=1, so retrying with [trusted=yes]" >&2
            write_sources "trusted=yes"
            step "apt-get update (private, ${SOURCE_SUITE} sources, unsigned)" apt-get "${PRIVATE_APT[@]}" --error-on=any update
        else
            fail "apt-get update (private, ${SOURCE_SUITE} sources)" \
                "could not fetch the ${SOURCE_SUITE} source index from ${MIRROR_URI} (exit $rc)"
        fi
    fi
    fetch_source() ( cd "$SRC_DIR" && apt-get "${PRIVATE_APT[@]}" source "$SOURCE_PACKAGE" )
    step "apt-get source ${SOURCE_PACKAGE} (${SOURCE_SUITE})" fetch_source
    [[ -n "$(src_tree)" ]] || fail "apt-get source" "no ${SOURCE_PACKAGE}-* directory unpacked in $SRC_DIR"
    touch "$FETCH_STAMP"
    rm -rf "$APT_DIR"  # ~20 MB of index files, not needed any more
fi
TREE="$(src_tree)"

# --- 3. build and install (Apache-only) --------------------------------------
OBJ_DIR="${BUILD_DIR}/build"
rm -rf "$OBJ_DIR"
# Same switches as Debian's own package (telemetry off), plus the ones that
# keep the build from needing test tools or failing on new-compiler warnings.
step "cmake configure (APACHE_ONLY)" cmake -S "$TREE" -B "$OBJ_DIR" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPG_CONFIG="$PG_CONFIG" \
    -DAPACHE_ONLY=ON \
    -DREGRESS_CHECKS=OFF \
    -DTAP_CHECKS=OFF \
    -DWARNINGS_AS_ERRORS=OFF \
    -DSEND_TELEMETRY_DEFAULT=OFF \
    -DUSE_TELEMETRY=OFF
step "make -j$(nproc)" make -C "$OBJ_DIR" -j"$(nproc)"
step "make install" make -C "$OBJ_DIR" install

is_installed || fail "verify install" "make install finished but $SO_FILE or $CONTROL_FILE is missing"
SUCCESS=1
echo "$PROG: installed timescaledb $(installed_version) (Apache-only) for PostgreSQL ${PG_MAJOR} into ${PKGLIBDIR}; start postgres with -c shared_preload_libraries=timescaledb"
echo "$PROG: total time $(elapsed)"
