#!/bin/sh
# Installs the Debian 12 packages kiln and its tests need, only those missing,
# non-interactively.  Used by `make deps` (and so by `make run` and `make check`).
set -e
PKGS="gcc make clang clang-format pkg-config libuv1-dev libhttp-parser-dev libcurl4-openssl-dev protobuf-c-compiler
libprotobuf-c-dev libsnappy-dev libzstd-dev zlib1g-dev libyaml-dev libpcre2-dev libxxhash-dev libssl-dev libcrypt-dev check
libclang-rt-14-dev libc-ares-dev python3 curl dnsmasq-base prometheus prometheus-node-exporter prometheus-alertmanager
nodejs npm chromium"
missing=""
for p in $PKGS; do
    # node and npm may come from elsewhere than Debian (NodeSource's nodejs
    # bundles npm and conflicts with Debian's npm package): a working command
    # is enough for them.
    case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *"ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0
echo "make deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# The Debian packages of prometheus and friends start services; kiln's tests
# start their own instances, so keep the packaged services from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends $missing || {
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends $missing
}
