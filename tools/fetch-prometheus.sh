#!/usr/bin/env bash
# Fetches the real Prometheus releases (prometheus + promtool) the end-to-end tests run: the oldest
# (Debian bookworm's 2.42), a middle one (trixie's 2.53) and the newest (sid's 3.x).
#
#   usage: bash tools/fetch-prometheus.sh [--update] [DEST]
#
#   DEST      defaults to $PROMCASE_PROMETHEUS_RELEASES, else
#             ${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases (where tests/_prometheus.ts looks)
#   --update  ask the archive again even when all three releases are already there (sid moves on)
#
# Layout: DEST/<version>/usr/bin/{prometheus,promtool}, and DEST/bookworm, DEST/trixie, DEST/sid
# link to the release of that suite, so tests need not hard-code version numbers. Prints one line
# per release, "<version> <bin dir>"; progress and errors go to stderr.
#
# On Debian, where apt is configured with an archive (and its keyring is installed), packages come
# from there (signatures checked as apt checks them; nothing is installed: apt works in a temporary
# state dir and the packages are only unpacked into DEST). Elsewhere (macOS, Ubuntu, a CI runner),
# or for a suite the archive does not answer, the upstream release tarballs of the pinned versions
# below come from GitHub, checked against their sha256sums.txt.
# PROMCASE_PROMETHEUS_SOURCE=debian|upstream forces one source (default: auto);
# PROMCASE_PROMETHEUS_DOWNLOAD replaces https://github.com/prometheus/prometheus/releases/download.
#
# Idempotent: a release already unpacked in DEST is not fetched again, and with all three present
# (and no --update) nothing touches the network. A release is unpacked into a temporary dir inside
# DEST and renamed into place, so an interrupted run leaves no half release behind.
set -euo pipefail

# suite:upstream version. The upstream pins are the versions Debian had when they were written.
pairs=(bookworm:2.42.0 trixie:2.53.3 sid:3.5.3)

update=0
dest=
for arg in "$@"; do
  case $arg in
    --update) update=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fetch-prometheus: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) dest=$arg ;;
  esac
done
dest=${dest:-${PROMCASE_PROMETHEUS_RELEASES:-${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases}}
source_mode=${PROMCASE_PROMETHEUS_SOURCE:-auto}
case $source_mode in auto | debian | upstream) ;; *)
  echo "fetch-prometheus: PROMCASE_PROMETHEUS_SOURCE must be auto, debian or upstream" >&2; exit 2 ;;
esac
download=${PROMCASE_PROMETHEUS_DOWNLOAD:-https://github.com/prometheus/prometheus/releases/download}

say() { echo "fetch-prometheus: $*" >&2; }
complete() { [ -x "$1/usr/bin/prometheus" ] && [ -x "$1/usr/bin/promtool" ]; }

mkdir -p "$dest"

# Fast path: every suite link points at a complete release.
if [ "$update" = 0 ]; then
  all=1
  for pair in "${pairs[@]}"; do complete "$dest/${pair%%:*}" || all=0; done
  if [ "$all" = 1 ]; then
    for pair in "${pairs[@]}"; do
      v=$(basename "$(cd "$dest/${pair%%:*}" && pwd -P)")
      echo "$v $dest/$v/usr/bin"
    done
    exit 0
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work" "$dest"/.incoming-*."$$"' EXIT

# Moves a finished release dir into DEST/<version> unless another run got there first.
install_release() {
  local from=$1 version=$2
  complete "$from" || { say "$version: no prometheus/promtool in the download"; return 1; }
  if complete "$dest/$version"; then rm -rf "$from"; return 0; fi
  rm -rf "${dest:?}/$version"
  mv "$from" "$dest/$version"
}

# --- Debian's archive ----------------------------------------------------------------------------
apt_opts=()
debian_ready=0
setup_debian() {
  [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    { say "no apt/dpkg on this machine"; return 1; }
  # The archive's address is read from this machine's own apt configuration, not written here.
  # Ubuntu and other derivatives have apt too, but not Debian's suites.
  local uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ "$( (. /etc/os-release 2>/dev/null && echo "${ID:-}"))" = debian ] ||
    { say "not a Debian system"; return 1; }
  uri=$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } |
    awk '/^(URIs:|deb) / && $2 !~ /security/ {print $2; exit}')
  [ -n "$uri" ] || { say "no Debian archive in /etc/apt"; return 1; }
  [ -f "$keyring" ] ||
    { say "$keyring missing (apt-get install debian-archive-keyring)"; return 1; }
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  local suite
  for suite in bookworm trixie sid; do
    echo "deb [signed-by=$keyring] $uri $suite main"
  done >"$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
  # As root apt drops to the _apt user, which cannot write into our temporary dirs.
  [ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
  say "reading the package lists of $uri (bookworm, trixie, sid)"
  apt-get "${apt_opts[@]}" -qq update >/dev/null 2>"$work/apt.err" ||
    { say "apt-get update failed: $(tail -n 1 "$work/apt.err")"; return 1; }
  debian_ready=1
}

# Prints the suite's prometheus package version (e.g. 2.42.0+ds-5+b5), or nothing.
debian_version() {
  apt-cache "${apt_opts[@]}" policy prometheus | awk -v s="$1" '
    NF == 2 && $2 ~ /^[0-9]+$/ {v=$1} $1 == "***" && NF == 3 {v=$2}
    $0 ~ " "s"/main " && v != "" {print v; exit}'
}

# Unpacks prometheus (and promtool, a package of its own since trixie) of one version into $2.
debian_unpack() {
  local version=$1 into=$2 deb
  rm -f "$work"/*.deb
  (cd "$work" && apt-get "${apt_opts[@]}" -qq download "prometheus=$version" >/dev/null &&
    { apt-get "${apt_opts[@]}" -qq download "promtool=$version" >/dev/null 2>&1 || true; }) ||
    return 1
  mkdir -p "$into"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$into"; done
  rm -f "$work"/*.deb
}

# --- Upstream release tarballs -------------------------------------------------------------------
upstream_platform() {
  local os arch
  case $(uname -s) in Linux) os=linux ;; Darwin) os=darwin ;; *)
    say "no upstream Prometheus build for $(uname -s)"; return 1 ;;
  esac
  case $(uname -m) in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *)
    say "no upstream Prometheus build for $(uname -m)"; return 1 ;;
  esac
  echo "$os-$arch"
}

sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi; }

upstream_unpack() {
  local version=$1 into=$2 platform name want got
  platform=$(upstream_platform) || return 1
  name=prometheus-$version.$platform
  say "downloading $name.tar.gz from $download"
  curl -fsSL --retry 3 -o "$work/$name.tar.gz" "$download/v$version/$name.tar.gz" &&
    curl -fsSL --retry 3 -o "$work/sha256sums-$version.txt" "$download/v$version/sha256sums.txt" ||
    { say "download of $name failed"; return 1; }
  want=$(awk -v f="$name.tar.gz" '$2 == f || $2 == "*" f {print $1}' "$work/sha256sums-$version.txt")
  got=$(sha256 "$work/$name.tar.gz" | awk '{print $1}')
  [ -n "$want" ] && [ "$want" = "$got" ] ||
    { say "$name.tar.gz: sha256 $got does not match sha256sums.txt (${want:-no entry})"; return 1; }
  mkdir -p "$into/usr/bin"
  tar -xzf "$work/$name.tar.gz" -C "$into/usr/bin" --strip-components=1 \
    "$name/prometheus" "$name/promtool"
  rm -f "$work/$name.tar.gz"
}

# --- Each suite ----------------------------------------------------------------------------------
if [ "$source_mode" != upstream ]; then
  setup_debian || [ "$source_mode" = auto ] || exit 1
fi

failed=0
for pair in "${pairs[@]}"; do
  suite=${pair%%:*}
  pinned=${pair#*:}
  short= got=
  if [ "$debian_ready" = 1 ]; then
    full=$(debian_version "$suite")
    if [ -n "$full" ]; then
      short=${full%%+*}
      if complete "$dest/$short"; then
        got=1
      else
        say "unpacking prometheus $full ($suite) into $dest/$short"
        tmp=$dest/.incoming-$short.$$
        rm -rf "$tmp"
        debian_unpack "$full" "$tmp" && install_release "$tmp" "$short" && got=1 ||
          say "$suite: prometheus $full could not be fetched from Debian"
      fi
    else
      say "no prometheus in Debian $suite"
    fi
    if [ -z "$got" ] && [ "$source_mode" = debian ]; then failed=1; continue; fi
  fi
  if [ -z "$got" ]; then
    short=$pinned
    if ! complete "$dest/$short"; then
      tmp=$dest/.incoming-$short.$$
      rm -rf "$tmp"
      upstream_unpack "$short" "$tmp" && install_release "$tmp" "$short" ||
        { say "$suite: Prometheus $short could not be fetched"; failed=1; continue; }
    fi
  fi
  ln -sfn "$short" "$dest/$suite" # stable names: DEST/bookworm (oldest), trixie, sid (newest)
  echo "$short $dest/$short/usr/bin"
done
exit "$failed"
