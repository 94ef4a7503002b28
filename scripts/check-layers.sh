#!/usr/bin/env bash
# Layers that only point down (docs/ARCHITECTURE.md, "Layers").
#
#   scripts/check-layers.sh               checks src/ against the order in docs/ARCHITECTURE.md
#   scripts/check-layers.sh --self-test   shows on made-up trees that the check can fail
#   scripts/check-layers.sh --src DIR --order FILE   another tree or order (the self-test's)
#
# The order is written once, in the ```layers block of docs/ARCHITECTURE.md: one level per
# line, bottom first, modules on one line are peers. A module is a directory of src/ (a
# file directly in src/, such as main.c, is the module named by its base name). Every
# `#include "DIR/FILE"` in src/ whose DIR is another module must name a module on a lower
# line. Refused, each reported as FILE:LINE with both modules:
#   - an include that points up the order, or sideways to a peer on the same line;
#   - a module directory that the order does not name;
#   - any include cycle between modules, whatever the order says (reported as the cycle
#     and one include per step). With a strict order a cycle always has an upward or
#     sideways step too, so this is the check of last resort that does not depend on the
#     order being right.
# Includes in <...> and includes without a directory ("fuzz.h") are not between modules.
# Exit 0 when clean, 1 on a violation, 2 when the order cannot be read.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
src='' order=''

# Prints the levels of the ```layers block of $1, one line each, comments and blank lines
# removed; nothing when there is no such block.
read_order() {
  awk '
    /^```layers[[:space:]]*$/ { inside = 1; next }
    inside && /^```/ { exit }
    inside {
      sub(/#.*/, "")
      gsub(/^[[:space:]]+|[[:space:]]+$/, "")
      if ($0 != "") print
    }' "$1"
}

check() {
  local src=$1 order=$2 levels
  [ -d "$src" ] || { echo "layers-check: no source directory $src" >&2; return 2; }
  [ -f "$order" ] || { echo "layers-check: no order file $order" >&2; return 2; }
  levels=$(read_order "$order")
  [ -n "$levels" ] || {
    echo "layers-check: $order has no \`\`\`layers block (the layer order, bottom first)" >&2
    return 2
  }
  # Every quoted include with a directory, as "PATH:LINE:TEXT", in a stable order.
  local includes
  includes=$(cd "$src" && grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+/[^"]+"' \
    --include='*.c' --include='*.h' . | sed 's|^\./||' | LC_ALL=C sort -t: -k1,1 -k2,2n)
  # The module directories that exist, so an include of "sys/x.h" in quotes is not taken
  # for a module; and a module that exists but is not in the order is reported.
  local dirs
  dirs=$(cd "$src" && find . -mindepth 1 -maxdepth 1 -type d | sed 's|^\./||' | LC_ALL=C sort)
  local files
  files=$(cd "$src" && find . -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \) \
    | sed 's|^\./||; s|\.[ch]$||' | LC_ALL=C sort -u)

  {
    printf '%s\n' "$levels" | sed 's/^/L /'
    printf '%s\n' "$dirs" "$files" | sed '/^$/d; s/^/M /'
    printf '%s\n' "$includes" | sed '/^$/d; s/^/I /'
  } | awk -v srcname="src" -v ordername="$order" '
    function module_of(path,    p) {
      p = index(path, "/")
      if (p) return substr(path, 1, p - 1)
      sub(/\.[ch]$/, "", path)
      return path
    }
    function where(m) { return "\"" m "\" (level " level[m] ")" }
    # Depth-first search from m; a grey module met again closes a cycle.
    function dfs(m,    list, n, i, next_m, j, cyc, start, to) {
      color[m] = 1
      stack[++sp] = m
      n = split(adj[m], list, " ")
      for (i = 1; i <= n; i++) {
        next_m = list[i]
        if (color[next_m] == 1) {
          cyc = ""
          for (j = sp; j >= 1 && stack[j] != next_m; j--) ;
          start = j
          for (j = start; j <= sp; j++) cyc = cyc stack[j] " -> "
          cyc = cyc next_m
          if (!(cyc in seen_cycle)) {
            seen_cycle[cyc] = 1
            printf "layers-check: include cycle between modules: %s\n", cyc
            for (j = start; j <= sp; j++) {
              to = (j < sp) ? stack[j + 1] : next_m
              printf "  %s\n", site[stack[j], to]
            }
            bad = 1
          }
        } else if (color[next_m] == 0) {
          dfs(next_m)
        }
      }
      sp--
      color[m] = 2
    }
    $1 == "L" {
      nlevels++
      for (i = 2; i <= NF; i++) {
        if ($i in level) {
          printf "layers-check: %s: module \"%s\" is named twice in the layer order\n", ordername, $i
          fatal = 1
          exit 2
        }
        level[$i] = nlevels
        ordered[++nordered] = $i
      }
      next
    }
    $1 == "M" { exists[$2] = 1; next }
    $1 == "I" {
      rec = substr($0, 3)
      c1 = index(rec, ":"); path = substr(rec, 1, c1 - 1); rest = substr(rec, c1 + 1)
      c2 = index(rest, ":"); line = substr(rest, 1, c2 - 1); text = substr(rest, c2 + 1)
      q = index(text, "\""); inc = substr(text, q + 1); inc = substr(inc, 1, index(inc, "\"") - 1)
      from = module_of(path)
      to = substr(inc, 1, index(inc, "/") - 1)
      if (from == to || !(to in exists)) next
      nedges++
      loc = srcname "/" path ":" line ": " from " includes " inc
      if (!((from, to) in site)) {
        site[from, to] = loc
        adj[from] = adj[from] " " to
      }
      if (!(from in level) || !(to in level)) next   # reported below, once per module
      if (level[to] > level[from]) {
        printf "%s/%s:%s: upward include: %s includes %s, but %s is above %s in the layer order\n",
          srcname, path, line, where(from), inc, where(to), where(from)
        bad = 1
      } else if (level[to] == level[from]) {
        printf "%s/%s:%s: sideways include: %s includes %s, but %s and %s are peers on one level of the layer order\n",
          srcname, path, line, where(from), inc, "\"" to "\"", "\"" from "\""
        bad = 1
      }
      next
    }
    END {
      if (fatal || nlevels == 0) exit 2
      for (m in exists)
        if (!(m in level)) {
          printf "layers-check: module \"%s\" (%s/%s) is not in the layer order in %s: add it to the ```layers block\n",
            m, srcname, m, ordername
          bad = 1
        }
      # Modules in the order first (stable output), then any others.
      for (i = 1; i <= nordered; i++) if (color[ordered[i]] == 0) dfs(ordered[i])
      for (m in adj) if (color[m] == 0) dfs(m)
      if (bad) exit 1
      printf "layers-check: ok (%d levels, %d includes between modules, no cycle)\n", nlevels, nedges
    }'
}

# Made-up trees, each with what the check must say about it.
self_test() {
  local fails=0
  tmp=$(mktemp -d) || exit 2
  trap 'rm -rf "$tmp"' EXIT
  # $1 name, $2 expected exit code, $3.. patterns the output must contain (grep -E).
  expect() {
    local name=$1 want=$2 out rc
    shift 2
    out=$(check "$tmp/$name/src" "$tmp/$name/order.md" 2>&1)
    rc=$?
    if [ "$rc" -ne "$want" ]; then
      echo "layers-check self-test: $name: exit $rc, expected $want; output:" >&2
      printf '%s\n' "$out" | sed 's/^/    /' >&2
      fails=$((fails + 1))
      return
    fi
    for pat in "$@"; do
      if ! printf '%s\n' "$out" | grep -qE -- "$pat"; then
        echo "layers-check self-test: $name: output lacks /$pat/; output:" >&2
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        fails=$((fails + 1))
      fi
    done
  }
  # tree NAME ORDER-LINES... -- FILE=CONTENT...
  tree() {
    local name=$1 d
    shift
    d=$tmp/$name
    mkdir -p "$d/src"
    { echo '# order'; echo; echo '```layers'; echo '# bottom first'
      while [ "$1" != "--" ]; do echo "$1"; shift; done
      echo '```'; } >"$d/order.md"
    shift
    for spec in "$@"; do
      mkdir -p "$(dirname "$d/src/${spec%%=*}")"
      printf '%b\n' "${spec#*=}" >"$d/src/${spec%%=*}"
    done
  }

  # Down only, peers apart; includes within a module, in <...>, without a directory or of
  # a directory that is no module are not between modules.
  tree good 'util' 'types' 'store config' 'gateway  # a comment' 'main' -- \
    'util/log.h=#include <stdio.h>' \
    'types/event.h=#include "util/log.h"' \
    'store/store.h=#include "types/event.h"\n#include "store/other.h"' \
    'store/other.h=' \
    'config/config.h=  #  include "types/event.h"\n#include "sys/not_a_module.h"' \
    'gateway/conn.c=#include "store/store.h"\n#include "config/config.h"\n#include "local.h"' \
    'main.c=#include "gateway/conn.c"'
  expect good 0 '^layers-check: ok \(5 levels, 6 includes between modules, no cycle\)'

  tree up 'util' 'types' 'store' -- \
    'util/log.h=' \
    'types/event.h=#include "util/log.h"\n\n#include "store/store.h"' \
    'store/store.h=#include "types/event.h"'
  expect up 1 \
    '^src/types/event.h:3: upward include: "types" \(level 2\) includes store/store.h, but "store" \(level 3\) is above "types"' \
    'include cycle between modules: (types -> store -> types|store -> types -> store)' \
    'src/store/store.h:1: store includes types/event.h'

  tree peers 'util' 'store config' -- \
    'util/log.h=' \
    'store/store.h=#include "config/config.h"' \
    'config/config.h=#include "util/log.h"\n#include "store/store.h"'
  expect peers 1 \
    '^src/config/config.h:2: sideways include: "config" \(level 2\) includes store/store.h' \
    '^src/store/store.h:1: sideways include' \
    'include cycle between modules: (config -> store -> config|store -> config -> store)'

  # A three-module cycle that a wrong order does not hide: the upward step is reported and
  # the cycle named whole, one include per step.
  tree cycle3 'a' 'b' 'c' -- \
    'a/a.h=#include "c/c.h"' 'b/b.h=#include "a/a.h"' 'c/c.h=#include "b/b.h"'
  expect cycle3 1 'upward include: "a" \(level 1\) includes c/c.h' \
    'include cycle between modules: a -> c -> b -> a' \
    'src/a/a.h:1: a includes c/c.h' 'src/c/c.h:1: c includes b/b.h' 'src/b/b.h:1: b includes a/a.h'

  tree unknown 'util' -- 'util/log.h=' 'extra/x.c=#include "util/log.h"'
  expect unknown 1 'module "extra" \(src/extra\) is not in the layer order'

  tree noblock 'util' -- 'util/log.h='
  printf '# no order here\n' >"$tmp/noblock/order.md"
  expect noblock 2 'has no ```layers block'

  tree twice 'util' 'util' -- 'util/log.h='
  expect twice 2 'module "util" is named twice'

  if [ "$fails" -ne 0 ]; then
    echo "layers-check self-test: $fails failed" >&2
    exit 1
  fi
  echo "layers-check self-test: ok (7 trees: 1 clean and passed, 6 refused as they should be)"
}

case "${1:-}" in
--self-test) self_test ;;
"") cd "$root" && check src docs/ARCHITECTURE.md ;;
*)
  while [ $# -gt 0 ]; do
    case "$1" in
    --src) src=${2:-}; shift 2 || shift ;;
    --order) order=${2:-}; shift 2 || shift ;;
    *) echo "usage: $0 [--self-test | --src DIR --order FILE]" >&2; exit 2 ;;
    esac
  done
  if [ -z "$src" ] || [ -z "$order" ]; then
    echo "usage: $0 [--self-test | --src DIR --order FILE]" >&2
    exit 2
  fi
  check "$src" "$order"
  ;;
esac
