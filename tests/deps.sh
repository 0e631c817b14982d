#!/bin/sh
# Install the Debian packages the build and tests need, but only those missing.
#
#   tests/deps.sh [WHAT...]     WHAT: doctest build meson clang pkg-config
#                               windows arm be libcxx cross all
#                               (default: all)
#
# Idempotent and fast when everything is present (no apt call at all), so the
# Makefile can call it before every `make test` / `make check`.
set -eu

[ $# -gt 0 ] || set -- all

# have PACKAGE: is the package (or what it provides) already installed?
have() {
    case $1 in
        doctest-dev)  test -f /usr/include/doctest/doctest.h ;;
        g++)          command -v g++ >/dev/null 2>&1 ;;
        make)         command -v make >/dev/null 2>&1 ;;
        meson)        command -v meson >/dev/null 2>&1 ;;
        ninja-build)  command -v ninja >/dev/null 2>&1 ;;
        clang)        command -v clang++ >/dev/null 2>&1 ;;
        pkg-config)   command -v pkg-config >/dev/null 2>&1 ;;
        # No command to probe: the ASan/UBSan runtimes for clang -fsanitize.
        *) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' ;;
    esac
}

pkgs=
for what in "$@"; do
    case $what in
        doctest)    want=doctest-dev ;;
        build)      want='g++ make' ;;
        meson)      want='meson ninja-build' ;;
        clang)      want='clang libclang-rt-14-dev' ;;
        pkg-config) want=pkg-config ;;
        # Cross builds and their emulators (make test-windows / test-arm / test-be), libc++.
        windows)    want='g++-mingw-w64-x86-64-posix wine64 wine meson ninja-build' ;;
        arm)        want='g++-arm-linux-gnueabihf qemu-user' ;;
        be)         want='g++-s390x-linux-gnu qemu-user' ;;
        libcxx)     want='clang libc++-14-dev libc++abi-14-dev' ;;
        cross)      want='g++-mingw-w64-x86-64-posix wine64 wine g++-arm-linux-gnueabihf g++-s390x-linux-gnu qemu-user libc++-14-dev libc++abi-14-dev' ;;
        # `make check` (CI), with its portability step: the cross and libc++ groups too.
        all)        want='doctest-dev g++ make pkg-config meson ninja-build clang libclang-rt-14-dev
                          g++-mingw-w64-x86-64-posix wine64 wine g++-arm-linux-gnueabihf
                          g++-s390x-linux-gnu qemu-user libc++-14-dev libc++abi-14-dev' ;;
        *) echo "deps.sh: unknown group '$what' (doctest build meson clang pkg-config windows arm be libcxx cross all)" >&2; exit 2 ;;
    esac
    for p in $want; do
        case " $pkgs " in *" $p "*) continue ;; esac
        have "$p" || pkgs="$pkgs $p"
    done
done

[ -n "$pkgs" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: installing:$pkgs"
# A fresh machine may have no (or stale) package lists: update only on failure.
# shellcheck disable=SC2086  # $pkgs is a word list on purpose
$sudo apt-get install -y --no-install-recommends $pkgs ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $pkgs; }
