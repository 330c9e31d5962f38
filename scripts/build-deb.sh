#!/usr/bin/env bash
# Build the Debian package dlcount_VERSION_ARCH.deb, so that a download
# server needs no Rust toolchain: `apt install ./dlcount_*.deb`.
#
#   scripts/build-deb.sh [--binary PATH] [--out DIR]
#
# --binary PATH  a dlcount-pipe already built (default: `cargo build --release`
#                here, then target/release/dlcount-pipe)
# --out DIR      where the .deb goes (default target/debian); its path is
#                the last line printed
#
# Debian's own dpkg-deb builds it (no cargo-deb: compiling that tool would
# cost minutes in every CI run); --root-owner-group makes every file
# root:root without fakeroot. What goes in:
#   /usr/bin/dlcount-pipe                      the binary, stripped
#   /etc/apache2/conf-available/dlcount.conf   apache-conf/dlcount.conf with the binary at
#                                              /usr/bin (the package's path; install.sh
#                                              without the package uses /usr/local/bin)
#   /etc/dlcount/dlcount.toml                  apache-conf/dlcount.toml, site_title
#                                              commented out (the default applies)
#   both are conffiles: dpkg keeps the admin's edits on upgrade
#   /usr/share/man/man1/dlcount-pipe*.1.gz     from `dlcount-pipe generate man DIR`
#   bash, zsh and fish completions             from `dlcount-pipe generate completions SHELL`
#   /usr/share/doc/dlcount/                    copyright, changelog, README,
#                                              examples/ (the site and vhost confs)
# Maintainer scripts (scripts/debian/postinst, prerm, postrm): the user
# dlcount and /var/lib/dlcount on configure, a2enconf through Debian's
# apache2-maintscript-helper; see their headers for remove and purge.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

binary=""
out=$REPO/target/debian
while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'build-deb: unknown option: %s\n' "$1" >&2; exit 2 ;;
    esac
done
die() { printf 'build-deb: error: %s\n' "$*" >&2; exit 1; }
for tool in dpkg-deb dpkg objdump strip gzip; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dpkg binutils gzip)"
done

if [ -z "$binary" ]; then
    # shellcheck source=scripts/toolchain.sh
    . "$HERE/toolchain.sh"
    problem=$(toolchain_problem "$REPO") || die "$problem, or pass --binary PATH"
    cargo build --release --manifest-path "$REPO/Cargo.toml" >&2
    binary=$REPO/target/release/dlcount-pipe
fi
[ -x "$binary" ] || die "not an executable: $binary"
"$binary" generate man >/dev/null 2>&1 || die "$binary has no generate subcommand (too old?)"

version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$REPO/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
arch=$(dpkg --print-architecture)
# The maintainer: $DEB_MAINTAINER, else the author of the last commit.
maintainer=${DEB_MAINTAINER:-$(git -C "$REPO" log -1 --format='%an <%ae>' 2>/dev/null || true)}
[ -n "$maintainer" ] || die "set DEB_MAINTAINER (\"Name <address>\"): no git history to take it from"
# Reproducible timestamps: the last commit's, when there is one.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

umask 022
mkdir -p "$out"
out=$(cd "$out" && pwd)
pkg=dlcount_${version}_$arch
stage=$(mktemp -d "${TMPDIR:-/tmp}/build-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/$pkg
doc=$root/usr/share/doc/dlcount
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/etc/apache2/conf-available" "$root/etc/dlcount" \
    "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d" \
    "$doc/examples" "$root/usr/share/lintian/overrides"

# The binary: the release profile keeps line tables (debug = 1) for
# backtraces during development; the package ships it stripped.
install -m 0755 "$binary" "$root/usr/bin/dlcount-pipe"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/dlcount-pipe"

# The configuration, with the package's binary path.
to_usr_bin() { sed -e 's#/usr/local/bin/dlcount-pipe#/usr/bin/dlcount-pipe#g' "$1"; }
to_usr_bin "$REPO/apache-conf/dlcount.conf" >"$root/etc/apache2/conf-available/dlcount.conf"
sed -e 's/^site_title = /#site_title = /' "$REPO/apache-conf/dlcount.toml" >"$root/etc/dlcount/dlcount.toml"
to_usr_bin "$REPO/apache-conf/dlcount-site.conf" >"$doc/examples/dlcount-site.conf"
to_usr_bin "$REPO/apache-conf/dlcount-vhost.conf" >"$doc/examples/dlcount-vhost.conf"
printf '%s\n' /etc/apache2/conf-available/dlcount.conf /etc/dlcount/dlcount.toml >"$root/DEBIAN/conffiles"

# Man pages and completions, from the binary's own command line.
"$binary" generate man "$root/usr/share/man/man1" >/dev/null
gzip -9n "$root"/usr/share/man/man1/*.1
"$binary" generate completions bash >"$root/usr/share/bash-completion/completions/dlcount-pipe"
"$binary" generate completions zsh >"$root/usr/share/zsh/vendor-completions/_dlcount-pipe"
"$binary" generate completions fish >"$root/usr/share/fish/vendor_completions.d/dlcount-pipe.fish"

# Documentation.
install -m 0644 "$HERE/debian/copyright" "$doc/copyright"
gzip -9n <"$REPO/README.md" >"$doc/README.md.gz"
{
    printf 'dlcount (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built from the source tree by scripts/build-deb.sh%s.\n\n' \
        "$(git -C "$REPO" log -1 --format=' (commit %h)' 2>/dev/null || true)"
    printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$epoch")"
} | gzip -9n >"$doc/changelog.gz"

# The one lintian warning that does not apply: the conf is Apache-only
# because the program is Apache's piped logger.
printf '%s\n' "# Apache's piped logger: the configuration can only be Apache's." \
    "dlcount: web-application-works-only-with-apache dlcount.conf [etc/apache2/conf-available/dlcount.conf]" \
    >"$root/usr/share/lintian/overrides/dlcount"

# Maintainer scripts and control.
install -m 0755 "$HERE/debian/postinst" "$HERE/debian/prerm" "$HERE/debian/postrm" "$root/DEBIAN/"
# Depends: the shared libraries the binary links. dpkg-shlibdeps (dpkg-dev)
# knows them all; without it, the libraries a Rust binary links on Debian.
depends=""
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    mkdir -p "$stage/src/debian"
    printf 'Source: dlcount\n\nPackage: dlcount\nArchitecture: any\n' >"$stage/src/debian/control"
    depends=$(cd "$stage/src" && dpkg-shlibdeps -O "$root/usr/bin/dlcount-pipe" 2>/dev/null \
        | sed -n 's/^shlibs:Depends=//p')
fi
if [ -z "$depends" ]; then
    glibc=$(objdump -T "$root/usr/bin/dlcount-pipe" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    depends="libc6 (>= $glibc)"
    while read -r lib; do
        case $lib in
            libc.so.6 | libm.so.6 | ld-linux*) ;;
            libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
            *) die "the binary links $lib: install dpkg-dev (dpkg-shlibdeps) to work out its package" ;;
        esac
    done < <(objdump -p "$root/usr/bin/dlcount-pipe" | awk '$1 == "NEEDED" { print $2 }')
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" "$HERE/debian/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$epoch" {} +

dpkg-deb --root-owner-group -Zxz --build "$root" "$out/$pkg.deb" >/dev/null
printf '%s\n' "$out/$pkg.deb"
